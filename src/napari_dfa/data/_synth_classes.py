"""Class table and per-class layout constants of the synthetic tissue generator.

Private module: the public names are re-exported by :mod:`napari_dfa.data.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassSpec:
    """Description of one synthetic tissue class.

    Attributes
    ----------
    name:
        Public class name.
    color:
        Display colour for napari label layers (``"#rrggbb"``).
    frequency:
        Default pixel fraction of the class in :func:`generate_tissue`.
    difficulty:
        Intended difficulty: ``"easy"``, ``"medium"`` or ``"hard"``.
    """

    name: str
    color: str
    frequency: float
    difficulty: str


CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec("stroma", "#f08cb4", 0.35, "easy"),
    ClassSpec("tumor", "#7b3fb5", 0.30, "medium"),
    ClassSpec("necrosis", "#e0b43c", 0.22, "hard"),
    ClassSpec("lymphocytes", "#1f4fd8", 0.05, "easy"),
    ClassSpec("mucin", "#3cc8c8", 0.08, "hard"),
)
"""The five tissue classes in label order (label = index + 1)."""

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
CLASS_COLORS: tuple[str, ...] = tuple(c.color for c in CLASSES)

# Keep the public import path in reprs, docs and pickles.
ClassSpec.__module__ = "napari_dfa.data.synthetic"

_K = len(CLASSES)
_STROMA, _TUMOR, _NECROSIS, _LYMPH, _MUCIN = range(_K)

# Region length scales (pixels, std of the Gaussian smoothing of the layout noise) and
# the weight of a finer second scale that makes boundaries irregular.  Rare classes
# use smaller scales so that they form islands.
_REGION_SIGMA = np.array([60.0, 55.0, 48.0, 22.0, 26.0])
_REGION_FINE = np.array([0.35, 0.30, 0.45, 0.25, 0.35])
# Boundary softness (logistic width in units of the unit-variance layout field) at
# difficulty 0 and at difficulty 1.
_TAU_EASY = np.array([0.02, 0.02, 0.02, 0.02, 0.02])
_TAU_HARD = np.array([0.02, 0.03, 0.22, 0.02, 0.16])

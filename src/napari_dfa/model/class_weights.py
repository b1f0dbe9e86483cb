"""Class weights of the loss-reweighting baselines, computed from the user's annotations.

All weights are normalised to mean 1 over classes. Formulas: ``docs/benchmarks.md`` and
``../shared/docs/dfa-background.md`` §3, §5.

* inverse frequency: ``w_c = N / (K n_c)`` with ``n_c`` annotated pixels of class c;
* median-frequency balancing (Eigen & Fergus 2015): ``w_c = median(f) / f_c`` with
  ``f_c = n_c / (annotated pixels of the images where c is present)``;
* effective number of samples (Cui et al. 2019): ``w_c ∝ (1 - β) / (1 - β^{m_c})`` with
  ``m_c`` the number of annotated *regions* (connected components) of class c — pixel
  counts make ``β^{n}`` vanish and the weights collapse to uniform;
* CDB (Sinha et al. 2020): ``w_c = (1 - A_c)^τ`` from held-out per-class scores ``A_c``,
  with the dynamic ``τ = 2 sigmoid(max A / (min A + ε) - 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "annotated_regions",
    "cdb_weights",
    "effective_number_weights",
    "inverse_frequency_weights",
    "median_frequency_weights",
    "normalise",
]

_EPS_COUNT = 1.0  # pseudo-count for classes without annotation


def normalise(w: np.ndarray) -> list[float]:
    w = np.asarray(w, dtype=np.float64)
    return (w / w.mean()).tolist()


def inverse_frequency_weights(counts: Sequence[float]) -> list[float]:
    n = np.maximum(np.asarray(counts, dtype=np.float64), _EPS_COUNT)
    return normalise(n.sum() / (len(n) * n))


def median_frequency_weights(labels: Sequence[np.ndarray], num_classes: int) -> list[float]:
    """Median-frequency balancing over label images (0 = unlabeled)."""
    pix = np.zeros(num_classes)
    present_px = np.zeros(num_classes)
    for lab in labels:
        lab = np.asarray(lab)
        counts = np.bincount(lab.ravel(), minlength=num_classes + 1)[1 : num_classes + 1]
        total = counts.sum()
        pix += counts
        present_px += np.where(counts > 0, total, 0)
    freq = np.where(present_px > 0, pix / np.maximum(present_px, 1), np.nan)
    med = np.nanmedian(freq) if np.isfinite(freq).any() else 1.0
    freq = np.where(np.isfinite(freq), freq, np.nanmin(freq) if np.isfinite(freq).any() else 1.0)
    return normalise(med / np.maximum(freq, 1e-12))


def annotated_regions(labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Number of connected annotated regions (strokes, blobs) per class."""
    regions = np.zeros(num_classes, np.int64)
    for lab in labels:
        lab = np.asarray(lab)
        for c in range(1, num_classes + 1):
            mask = lab == c
            if mask.any():
                regions[c - 1] += ndimage.label(mask, structure=np.ones((3, 3)))[1]
    return regions


def effective_number_weights(region_counts: Sequence[float], beta: float = 0.99) -> list[float]:
    m = np.maximum(np.asarray(region_counts, dtype=np.float64), _EPS_COUNT)
    return normalise((1.0 - beta) / (1.0 - np.power(beta, m)))


def cdb_weights(scores: Sequence[float], tau: float | None = None, eps: float = 0.01) -> tuple[list[float], float]:
    """CDB weights from per-class held-out scores in [0, 1] (accuracy, Dice...).

    Returns ``(weights, tau)``; ``tau=None`` uses the dynamic rule of the official code
    (``CIFAR-LT/utils.py::compute_weights``).
    """
    a = np.clip(np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0), 0.0, 1.0)
    if tau is None:
        bias = a.max() / (a.min() + eps)
        tau = float(2.0 / (1.0 + np.exp(-(bias - 1.0))))
    w = np.power(np.maximum(1.0 - a, 1e-6), tau)
    return normalise(w), tau

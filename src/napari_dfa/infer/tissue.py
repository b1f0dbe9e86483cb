"""Tissue detection: skip background (glass) chunks.

Tissue is stained, glass is not: pixels whose HSV saturation exceeds a threshold are
tissue. The threshold is Otsu's on the saturation of a low-resolution view of the slide
(the coarsest pyramid level with at least ``min_side`` pixels), clipped to a sensible
range; without a pyramid a fixed threshold is used. A chunk is skipped when less than
``min_fraction`` of its (subsampled) window is tissue.
"""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2hsv
from skimage.filters import threshold_otsu

__all__ = ["DEFAULT_THRESHOLD", "TissueDetector"]

DEFAULT_THRESHOLD = 0.07
_CLIP = (0.04, 0.2)


def saturation(rgb: np.ndarray) -> np.ndarray:
    return rgb2hsv(rgb[..., :3])[..., 1]


class TissueDetector:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD, min_fraction: float = 0.01, stride: int = 8) -> None:
        self.threshold = float(threshold)
        self.min_fraction = float(min_fraction)
        self.stride = stride

    @classmethod
    def from_levels(cls, levels: list, min_side: int = 512, **kw) -> TissueDetector:
        """Threshold from the coarsest level with ``min(H, W) >= min_side`` (read whole:
        it is small); the fixed default when there is no small-enough level."""
        candidates = [lv for lv in levels[1:] if min(lv.shape[:2]) >= min_side and lv.shape[0] * lv.shape[1] <= 4096**2]
        if not candidates:
            return cls(DEFAULT_THRESHOLD, **kw)
        thumb = np.asarray(candidates[-1][..., :3])
        return cls(otsu_threshold(thumb), **kw)

    def fraction(self, window: np.ndarray) -> float:
        sub = window[:: self.stride, :: self.stride, :3]
        return float((saturation(sub) > self.threshold).mean()) if sub.size else 0.0

    def is_tissue(self, window: np.ndarray) -> bool:
        return self.fraction(window) >= self.min_fraction

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        return saturation(rgb) > self.threshold


def otsu_threshold(rgb: np.ndarray) -> float:
    s = saturation(rgb).ravel()
    if s.size == 0 or np.ptp(s) < 1e-3:
        return DEFAULT_THRESHOLD
    return float(np.clip(threshold_otsu(s), *_CLIP))

"""Training crops sampled around annotated pixels.

Sparse annotations (a few strokes per class) cover ~1-3 % of an image, so crops are
centred near annotated pixels; with ``class_balanced`` the class of the centre pixel is
drawn uniformly over the annotated classes, so rare classes are seen as often as
frequent ones. Images may be numpy or dask arrays: only the crop windows are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from napari_dfa.data.augment import AugmentConfig, augment_pair

__all__ = ["AnnotatedImage", "CropSampler", "class_pixel_counts"]


@dataclass
class AnnotatedImage:
    """One training image: ``image`` (H, W, 3) numpy or dask, ``labels`` (H, W) numpy
    with 0 = unlabeled and 1..K classes."""

    image: object
    labels: np.ndarray


def class_pixel_counts(labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Annotated pixels per class (index 0 = class 1), summed over label images."""
    counts = np.zeros(num_classes + 1, np.int64)
    for lab in labels:
        counts += np.bincount(np.asarray(lab).ravel(), minlength=num_classes + 1)[: num_classes + 1]
    return counts[1:]


class CropSampler:
    """Draws augmented ``(image, labels)`` crops of ``crop_size`` around annotations."""

    def __init__(
        self,
        data: Sequence[AnnotatedImage],
        num_classes: int,
        crop_size: int = 256,
        class_balanced: bool = True,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.data = list(data)
        self.k = num_classes
        self.crop = crop_size
        self.class_balanced = class_balanced
        self.augment = augment or AugmentConfig()
        self.rng = np.random.default_rng(seed)
        # coordinates of annotated pixels per class: list over classes of (img_idx, y, x)
        per_class: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        for i, d in enumerate(self.data):
            lab = np.asarray(d.labels)
            ys, xs = np.nonzero(lab)
            vals = lab[ys, xs].astype(np.int64)
            for c in np.unique(vals):
                if 1 <= c <= num_classes:
                    sel = vals == c
                    per_class[c - 1].append(np.stack([np.full(sel.sum(), i), ys[sel], xs[sel]], 1))
        self.coords = [np.concatenate(c) if c else np.zeros((0, 3), np.int64) for c in per_class]
        self.present = [c for c in range(num_classes) if len(self.coords[c])]
        if not self.present:
            raise ValueError("no annotated pixels")
        self.all_coords = np.concatenate([self.coords[c] for c in self.present])

    def _centre(self) -> tuple[int, int, int]:
        if self.class_balanced:
            c = self.present[int(self.rng.integers(len(self.present)))]
            pool = self.coords[c]
        else:
            pool = self.all_coords
        i, y, x = pool[int(self.rng.integers(len(pool)))]
        return int(i), int(y), int(x)

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One crop: ``(crop, crop, 3)`` uint8 image and ``(crop, crop)`` uint8 labels."""
        i, y, x = self._centre()
        d = self.data[i]
        lo, hi = self.augment.scale_range
        side = max(8, int(round(self.crop * self.rng.uniform(lo, hi))))
        # jitter the centre so the annotated pixel is not always in the middle
        y += int(self.rng.integers(-side // 4, side // 4 + 1))
        x += int(self.rng.integers(-side // 4, side // 4 + 1))
        img, lab = read_window(d.image, d.labels, y - side // 2, x - side // 2, side)
        if side != self.crop:
            img = resize(img, (self.crop, self.crop), order=1, preserve_range=True, anti_aliasing=False)
            img = img.astype(np.uint8)
            lab = resize(lab, (self.crop, self.crop), order=0, preserve_range=True, anti_aliasing=False)
            lab = lab.astype(np.uint8)
        return augment_pair(img, lab, self.rng, self.augment)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample() for _ in range(n)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def read_window(image, labels: np.ndarray, y0: int, x0: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``side x side`` window at ``(y0, x0)``; outside the image, the image is
    reflected and the labels are 0 (unlabeled)."""
    h, w = labels.shape
    ys, ye = max(y0, 0), min(y0 + side, h)
    xs, xe = max(x0, 0), min(x0 + side, w)
    img = np.asarray(image[ys:ye, xs:xe, :3])
    lab = np.asarray(labels[ys:ye, xs:xe])
    pad = ((ys - y0, y0 + side - ye), (xs - x0, x0 + side - xe))
    if any(p for pp in pad for p in pp):
        mode = (
            "reflect"
            if img.shape[0] > 1 and img.shape[1] > 1 and all(p < s for pp, s in zip(pad, img.shape[:2]) for p in pp)
            else "edge"
        )
        img = np.pad(img, pad + ((0, 0),), mode=mode)
        lab = np.pad(lab, pad, constant_values=0)
    return img.astype(np.uint8, copy=False), lab.astype(np.uint8, copy=False)

"""Raw training windows sampled around annotated pixels.

Sparse annotations (a few strokes per class) cover ~1-3 % of an image, so windows are
centred near annotated pixels; with ``class_balanced`` the class of the centre pixel is
drawn uniformly over the annotated classes, so rare classes are seen as often as
frequent ones. Images may be numpy or dask arrays: only the windows are read. Windows
are cut at :func:`~napari_dfa.data.augment.read_size` and left raw; zoom, flips,
rotations and colour jitter are done batched on the training device by
:func:`~napari_dfa.data.augment.augment_batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_dfa.data.augment import AugmentConfig, read_size

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
    """Cuts raw ``read x read`` uint8 windows around annotations; batch ``index`` is a
    function of ``(seed, index)`` only, so any batch can be redrawn (resume, prefetch)."""

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
        self.read = read_size(crop_size, self.augment)
        self.seed = seed
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

    def _centre(self, rng: np.random.Generator) -> tuple[int, int, int]:
        if self.class_balanced:
            c = self.present[int(rng.integers(len(self.present)))]
            pool = self.coords[c]
        else:
            pool = self.all_coords
        i, y, x = pool[int(rng.integers(len(pool)))]
        return int(i), int(y), int(x)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One window: ``(read, read, 3)`` uint8 image and ``(read, read)`` uint8 labels."""
        i, y, x = self._centre(rng)
        d = self.data[i]
        # jitter the centre so the annotated pixel is not always in the middle
        j = self.crop // 4
        y += int(rng.integers(-j, j + 1))
        x += int(rng.integers(-j, j + 1))
        side = self.read
        return read_window(d.image, d.labels, y - side // 2, x - side // 2, side)

    def batch(self, n: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index``: ``(n, read, read, 3)`` and ``(n, read, read)`` uint8."""
        rng = np.random.default_rng([self.seed, index])
        side = self.read
        images = np.empty((n, side, side, 3), np.uint8)
        labels = np.empty((n, side, side), np.uint8)
        for b in range(n):
            images[b], labels[b] = self.sample(rng)
        return images, labels


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

"""Where the annotations are on a (large) image, and the regions to read around them.

A user annotating a whole slide paints a few strokes in one or two places of a label
image as large as the slide. Training needs the image only around those strokes, so
the annotated pixels are found chunk by chunk (one chunk in memory at a time; numpy,
zarr or dask labels), grouped into boxes, grown by a margin and cropped. Shapes (napari
polygons, rectangles, ellipses, paths) are rasterised inside their own boxes only.

Qt- and napari-free: the Fine-tune and Class difficulty widgets call these helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Region",
    "annotated_regions",
    "class_counts",
    "merge_regions",
    "rasterize_shapes",
    "read_region",
    "view_region",
]


@dataclass(frozen=True)
class Region:
    """A box ``[y0, y1) x [x0, x1)`` in pixel coordinates of level 0."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def size(self) -> int:
        return max(self.y1 - self.y0, 0) * max(self.x1 - self.x0, 0)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def origin(self) -> tuple[int, int]:
        return self.y0, self.x0

    def grow(self, margin: int, bounds: Sequence[int]) -> Region:
        """The box grown by ``margin`` px on every side, clipped to ``(H, W)``."""
        h, w = int(bounds[0]), int(bounds[1])
        return Region(
            max(self.y0 - margin, 0),
            max(self.x0 - margin, 0),
            min(self.y1 + margin, h),
            min(self.x1 + margin, w),
        )

    def overlaps(self, other: Region) -> bool:
        return self.y0 < other.y1 and other.y0 < self.y1 and self.x0 < other.x1 and other.x0 < self.x1

    def touches(self, other: Region) -> bool:
        """Overlaps or shares an edge."""
        return self.y0 <= other.y1 and other.y0 <= self.y1 and self.x0 <= other.x1 and other.x0 <= self.x1

    def union(self, other: Region) -> Region:
        return Region(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1))


def merge_regions(regions: Sequence[Region]) -> list[Region]:
    """Merge overlapping or touching boxes until none do (sorted top-left first)."""
    out = [r for r in regions if r.size > 0]
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                if out[i].touches(out[j]):
                    out[i] = out[i].union(out.pop(j))
                    merged = True
                    break
            if merged:
                break
    return sorted(out, key=lambda r: (r.y0, r.x0))


def _nonzero_box(block: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(block.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(block.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def annotated_regions(labels, chunk: int = 1024, margin: int = 0) -> list[Region]:
    """Boxes around the annotated (non-zero) pixels of a label image ``(H, W)``.

    The image is read one ``chunk x chunk`` block at a time; each block's annotated
    pixels give an exact box, grown by ``margin`` (clipped to the image); boxes that
    overlap or touch are merged, so strokes far apart give separate boxes and a stroke
    across a block border gives one. Returns ``[]`` when nothing is annotated.
    """
    h, w = int(labels.shape[0]), int(labels.shape[1])
    boxes = []
    for y0 in range(0, h, chunk):
        for x0 in range(0, w, chunk):
            block = np.asarray(labels[y0 : min(y0 + chunk, h), x0 : min(x0 + chunk, w)])
            box = _nonzero_box(block != 0)
            if box is not None:
                r = Region(y0 + box[0], x0 + box[1], y0 + box[2], x0 + box[3])
                boxes.append(r.grow(margin, (h, w)))
    return merge_regions(boxes)


def read_region(array, region: Region) -> np.ndarray:
    """``array[y0:y1, x0:x1, ...]`` as numpy (reads only the region of dask/zarr arrays)."""
    win = array[region.slices]
    if hasattr(win, "compute"):
        win = win.compute()
    return np.asarray(win)


def class_counts(label_crops: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Annotated pixels per class ``1..num_classes`` (index 0 = class 1)."""
    counts = np.zeros(num_classes + 1, np.int64)
    for lab in label_crops:
        lab = np.asarray(lab)
        if lab.size:
            counts += np.bincount(lab.ravel().astype(np.int64), minlength=num_classes + 1)[: num_classes + 1]
    return counts[1:]


def view_region(corner_pixels, downsample: Sequence[float], shape: Sequence[int], max_side: int) -> Region:
    """The visible part of an image as a level-0 box, at most ``max_side`` px a side.

    Args:
        corner_pixels: ``[[y0, x0], [y1, x1]]`` of the view in the data coordinates of
            the displayed pyramid level (napari's ``layer.corner_pixels``, last two axes;
            ``y1, x1`` inclusive).
        downsample: that level's downsampling factors ``(dy, dx)`` relative to level 0.
        shape: level-0 ``(H, W)``.
        max_side: larger views keep their central ``max_side x max_side`` px.
    """
    c = np.asarray(corner_pixels, dtype=np.float64)[:, -2:]
    d = np.asarray(downsample, dtype=np.float64)[-2:]
    h, w = int(shape[0]), int(shape[1])
    y0, x0 = np.floor(c[0] * d).astype(int)
    y1, x1 = np.ceil((c[1] + 1) * d).astype(int)
    y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
    if y1 <= y0 or x1 <= x0:
        return Region(0, 0, 0, 0)
    if y1 - y0 > max_side:
        cy = (y0 + y1) // 2
        y0 = max(min(cy - max_side // 2, h - max_side), 0)
        y1 = y0 + max_side
    if x1 - x0 > max_side:
        cx = (x0 + x1) // 2
        x0 = max(min(cx - max_side // 2, w - max_side), 0)
        x1 = x0 + max_side
    return Region(int(y0), int(x0), int(y1), int(x1))


def _polyline_mask(points: np.ndarray, shape: tuple[int, int], radius: float) -> np.ndarray:
    from scipy import ndimage as ndi
    from skimage.draw import line

    mask = np.zeros(shape, bool)
    pts = np.round(points).astype(int)
    for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:], strict=False):
        rr, cc = line(r0, c0, r1, c1)
        ok = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        mask[rr[ok], cc[ok]] = True
    r = int(np.ceil(radius))
    if r >= 1:
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        mask = ndi.binary_dilation(mask, structure=(yy**2 + xx**2) <= radius**2 + 0.25)
    return mask


def _ellipse_outline(corners: np.ndarray, n: int = 64) -> np.ndarray:
    """Points on the ellipse inscribed in the (possibly rotated) box ``corners`` (4 x 2)."""
    c = corners.mean(0)
    a = (corners[1] - corners[0]) / 2.0
    b = (corners[3] - corners[0]) / 2.0
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return c + np.cos(t) * a + np.sin(t) * b


def rasterize_shapes(
    vertices: Sequence[np.ndarray],
    shape_types: Sequence[str],
    values: Sequence[int],
    image_shape: Sequence[int],
    widths: Sequence[float] | None = None,
    margin: int = 0,
) -> tuple[list[Region], list[np.ndarray]]:
    """Label crops of shapes painted with class values, one crop per group of shapes.

    Args:
        vertices: per shape, ``(N, 2)`` vertices in level-0 pixel coordinates (y, x).
        shape_types: napari shape types: ``polygon``, ``rectangle``, ``ellipse``
            (4 box corners), ``path`` or ``line``.
        values: class value of each shape (``1..K``; ``0`` shapes are skipped).
        image_shape: level-0 ``(H, W)``: shapes are clipped to it.
        widths: line width (px) of paths/lines (default 3).
        margin: grow each crop by this many px of unlabeled context.

    Returns:
        ``(regions, labels)``: level-0 boxes and ``uint8`` label crops; later shapes
        paint over earlier ones.
    """
    from skimage.draw import polygon as draw_polygon

    h, w = int(image_shape[0]), int(image_shape[1])
    widths = list(widths) if widths is not None else [3.0] * len(vertices)
    items = []
    for verts, kind, value, width in zip(vertices, shape_types, values, widths, strict=False):
        v = np.asarray(verts, dtype=np.float64)[:, -2:]
        if int(value) <= 0 or len(v) == 0:
            continue
        if kind == "ellipse" and len(v) == 4:
            v = _ellipse_outline(v)
        pad = float(width) / 2.0 + 1 if kind in ("path", "line") else 1.0
        lo, hi = np.floor(v.min(0) - pad).astype(int), np.ceil(v.max(0) + pad).astype(int) + 1
        box = Region(max(lo[0], 0), max(lo[1], 0), min(hi[0], h), min(hi[1], w))
        if box.size:
            items.append((box, v, kind, int(value), float(width)))
    if not items:
        return [], []
    regions = merge_regions([b.grow(margin, (h, w)) for b, *_ in items])
    crops = [np.zeros(r.shape, np.uint8) for r in regions]
    for box, v, kind, value, width in items:
        i = next(k for k, r in enumerate(regions) if r.overlaps(box))
        r, crop = regions[i], crops[i]
        local = v - np.array([r.y0, r.x0])
        if kind in ("path", "line"):
            mask = _polyline_mask(local, crop.shape, width / 2.0)
            crop[mask] = value
        else:
            rr, cc = draw_polygon(local[:, 0], local[:, 1], crop.shape)
            crop[rr, cc] = value
    return regions, crops

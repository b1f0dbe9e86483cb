"""Tiling geometry (pure numpy, property-tested).

The output is cut into **chunks** of ``tile x tile`` pixels (the unit of work, of
writing and of resuming). Each chunk is predicted from a **window**: the chunk grown by
``halo`` pixels of real image context on every side, so the model sees what lies beyond
the chunk edge. At the image border the window is shifted inward rather than clipped
(more context on the inner side): every window of a large image has the same shape,
which keeps batches uniform and lets each forward pass reuse the previous one's memory.
The DFA model is translation-equivariant for shifts by multiples of 32 px, so with window
origins on that grid and a halo larger than the model's effective receptive field, the
stitched chunks equal a whole-image forward up to floating-point noise.

A window larger than ``max_window`` is itself split into overlapping sub-tiles whose
logits are blended with a cosine or Gaussian weight window (MONAI's
``sliding_window_inference`` vocabulary: ``roi_size``, ``overlap``, ``mode``), again on
the 32-px grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["ALIGN", "Chunk", "band_order", "blend_weights", "chunk_grid", "subtiles"]

ALIGN = 32  # the model's coarsest stride: window origins stay on this grid


@dataclass(frozen=True)
class Chunk:
    """One unit of work: output region ``[y0:y1, x0:x1]`` and its input window."""

    index: tuple[int, int]
    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int

    @property
    def window_shape(self) -> tuple[int, int]:
        return self.wy1 - self.wy0, self.wx1 - self.wx0

    @property
    def core(self) -> tuple[slice, slice]:
        """Where the chunk sits inside its window."""
        return (slice(self.y0 - self.wy0, self.y1 - self.wy0), slice(self.x0 - self.wx0, self.x1 - self.wx0))

    @property
    def pixels(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)

    def restrict(self, y0: int, y1: int, x0: int, x1: int, halo: int) -> Chunk:
        """The same chunk (same index) computing only output ``[y0:y1, x0:x1]`` (inside
        this chunk, origins on the 32-px grid) from a window grown by ``halo`` and
        clipped to this chunk's window."""
        if not (self.y0 <= y0 < y1 <= self.y1 and self.x0 <= x0 < x1 <= self.x1):
            raise ValueError("restrict() needs a non-empty region inside the chunk")
        return Chunk(
            self.index,
            y0,
            y1,
            x0,
            x1,
            max(self.wy0, y0 - halo),
            min(self.wy1, y1 + halo),
            max(self.wx0, x0 - halo),
            min(self.wx1, x1 + halo),
        )


def _check(tile: int, halo: int) -> None:
    if tile <= 0 or tile % ALIGN:
        raise ValueError(f"tile must be a positive multiple of {ALIGN}, got {tile}")
    if halo < 0 or halo % ALIGN:
        raise ValueError(f"halo must be a non-negative multiple of {ALIGN}, got {halo}")


def chunk_grid(shape: tuple[int, int], tile: int, halo: int) -> list[Chunk]:
    """All chunks of an image of ``shape`` (H, W), row-major."""
    _check(tile, halo)
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"empty image shape {shape}")
    out = []
    for i, y0 in enumerate(range(0, h, tile)):
        y1 = min(y0 + tile, h)
        wy0, wy1 = _window(y0, y1, h, tile, halo)
        for j, x0 in enumerate(range(0, w, tile)):
            x1 = min(x0 + tile, w)
            out.append(Chunk((i, j), y0, y1, x0, x1, wy0, wy1, *_window(x0, x1, w, tile, halo)))
    return out


def band_order(chunks: list[Chunk], band: int) -> list[Chunk]:
    """``chunks`` in vertical bands of ``band`` chunk columns, left to right, each band
    row by row: consecutive windows share their input, and what a band shares with the
    band below it is at most ``band`` chunks away however wide the slide (row-major over
    the whole width it would be a whole row of the slide away)."""
    if band < 1:
        raise ValueError(f"band must be >= 1 chunk, got {band}")
    return sorted(chunks, key=lambda c: (c.index[1] // band, c.index[0], c.index[1]))


def _window(a: int, b: int, n: int, tile: int, halo: int) -> tuple[int, int]:
    """Window ``[s, e)`` of chunk ``[a, b)`` on an axis of length ``n``: ``halo`` on both
    sides, shifted inward at the borders to keep the full length ``tile + 2 halo`` (at
    most ``n``; at the far border up to 31 px less, to keep ``s`` on the 32-px grid)."""
    length = min(tile + 2 * halo, n)
    s, e = max(a - halo, 0), min(b + halo, n)
    if e - s < length:
        if s == 0:
            e = length
        else:  # e == n: the origin rounded up to the grid
            s = -(-(n - length) // ALIGN) * ALIGN
    return s, e


def grid_shape(shape: tuple[int, int], tile: int) -> tuple[int, int]:
    return math.ceil(shape[0] / tile), math.ceil(shape[1] / tile)


def _starts(length: int, size: int, step: int) -> list[int]:
    """Sub-tile origins covering ``[0, length)``: multiples of ALIGN, last one flush."""
    if length <= size:
        return [0]
    last = -(-(length - size) // ALIGN) * ALIGN  # first grid origin whose tile reaches the end
    starts = [s for s in range(0, last, step)]
    starts.append(last)
    return starts


def subtiles(shape: tuple[int, int], size: int, overlap: float) -> Iterator[tuple[int, int, int, int]]:
    """Overlapping sub-tiles ``(y0, y1, x0, x1)`` of a window; origins on the 32-px grid.

    The last sub-tile of a row/column may extend to the window edge with a shorter size.
    """
    if size % ALIGN:
        raise ValueError(f"sub-tile size must be a multiple of {ALIGN}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must be in [0, 1)")
    step = max(ALIGN, int(round(size * (1.0 - overlap) / ALIGN)) * ALIGN)
    h, w = shape
    for y0 in _starts(h, size, step):
        for x0 in _starts(w, size, step):
            yield y0, min(y0 + size, h), x0, min(x0 + size, w)


def blend_weights(shape: tuple[int, int], mode: str = "cosine", sigma_scale: float = 0.125) -> np.ndarray:
    """Positive weight window ``(h, w)``: ``constant``, ``cosine`` (Hann, floored) or
    ``gaussian`` (sigma = ``sigma_scale`` x side, as MONAI). Never zero, so every pixel
    of a sub-tile counts, most at the centre."""
    h, w = shape
    if mode == "constant":
        return np.ones((h, w), np.float32)

    def axis(n: int) -> np.ndarray:
        x = (np.arange(n, dtype=np.float64) + 0.5) / n  # (0, 1)
        if mode == "cosine":
            v = np.sin(np.pi * x) ** 2
        elif mode == "gaussian":
            s = max(sigma_scale, 1e-3)
            v = np.exp(-0.5 * ((x - 0.5) / s) ** 2)
        else:
            raise ValueError(f"unknown blend mode {mode!r}; use constant, cosine or gaussian")
        return np.maximum(v, 1e-3)

    return np.outer(axis(h), axis(w)).astype(np.float32)

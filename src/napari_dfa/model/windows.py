"""Geometry of the local cross-attention windows.

The class queries live on a grid of 32x32-pixel cells (one query state per class and
cell). At a memory level of stride ``s`` a cell is ``32 / s`` level pixels wide, and a
query attends to the ``window_cells x window_cells`` cells around its own. Because
windows are defined relative to the cell, the decoder is translation-equivariant for
shifts by multiples of 32 pixels, and a tile with a large-enough halo gives the same
prediction as a whole-image forward (what the tiled engine relies on).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["LocalWindows"]

CELL = 32


class LocalWindows:
    """Unfold a level map into per-cell key windows and fold per-key values back."""

    def __init__(self, stride: int, window_cells: int) -> None:
        if window_cells < 1 or window_cells % 2 == 0:
            raise ValueError("window_cells must be a positive odd number")
        self.cell = CELL // stride
        self.kernel = self.cell * window_cells
        self.padding = self.cell * (window_cells // 2)

    @property
    def size(self) -> int:
        """Keys per window."""
        return self.kernel * self.kernel

    def unfold(self, x: torch.Tensor, channels_last: bool = False, rows: slice | None = None) -> torch.Tensor:
        """``(B, C, h, w)`` (or ``(B, h, w, C)`` with ``channels_last``) -> ``(B * L, S, C)``.

        ``L`` is the number of cells (of the cell ``rows`` only, if given), ``S`` the keys
        per window. Windows are strided views of the zero-padded channels-last map, so
        only the final reshape copies.
        """
        if not channels_last:
            x = x.permute(0, 2, 3, 1)
        p = self.padding
        x = F.pad(x, (0, 0, p, p, p, p))
        v = x.unfold(1, self.kernel, self.cell).unfold(2, self.kernel, self.cell)  # B,gh,gw,C,k,k
        if rows is not None:
            v = v[:, rows]
        return v.permute(0, 1, 2, 4, 5, 3).reshape(-1, self.size, x.shape[-1])

    def fold(self, cols: torch.Tensor, batch: int, size: tuple[int, int]) -> torch.Tensor:
        """Sum per-window values ``(B * L, C, S)`` back onto the level map ``(B, C, h, w)``."""
        n, c, s = cols.shape
        x = cols.view(batch, n // batch, c, s).permute(0, 2, 3, 1).reshape(batch, c * s, -1)
        return F.fold(x, size, self.kernel, padding=self.padding, stride=self.cell)

    def valid(self, size: tuple[int, int], device: torch.device, rows: slice | None = None) -> torch.Tensor:
        """``(L, S)`` bool: which window positions fall inside the image (not padding),
        for the cells of ``rows`` only if given."""
        v = _valid(self.kernel, self.padding, self.cell, size, str(device))
        if rows is None:
            return v
        gw = -(-size[1] // self.cell)
        return v.view(-1, gw, v.shape[-1])[rows].reshape(-1, v.shape[-1])


@functools.lru_cache(maxsize=64)
def _valid(kernel: int, padding: int, cell: int, size: tuple[int, int], device: str) -> torch.Tensor:
    ones = torch.ones(1, 1, *size, device=device)
    cols = F.unfold(ones, kernel, padding=padding, stride=cell)  # (1, S, L)
    return cols[0].t() > 0.5

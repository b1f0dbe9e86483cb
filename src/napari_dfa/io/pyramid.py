"""Writing multiscale outputs (OME-Zarr style) lazily, chunk by chunk.

Label levels are downsampled by the **mode** of each 2 x 2 block (ties: the first
value in raster order), never by averaging class ids; probability levels by the mean.
"""

from __future__ import annotations

import numpy as np

__all__ = ["build_pyramid", "downsample2", "levels_below", "mean_downsample2", "mode_downsample2", "multiscales_attrs"]


def _pad_even(a: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    pad = [(0, 0)] * a.ndim
    for ax in axes:
        pad[ax] = (0, a.shape[ax] % 2)
    return np.pad(a, pad, mode="edge") if any(p[1] for p in pad) else a


def mode_downsample2(block: np.ndarray) -> np.ndarray:
    """2 x 2 block mode of a 2-D label image (output ``ceil(h/2) x ceil(w/2)``); ties go
    to the first value in raster order.

    With the block's values ``a b / c d``: ``a`` wins whenever it occurs twice (no other
    value can then occur more often, and it is first in a tie), else ``b`` if it occurs
    twice, else ``c`` if ``c == d``, else (all different) ``a``. Branch-free selections
    over whole arrays; uint8 labels are split into ``a, b, c, d`` through a 16-bit view of
    their pixel pairs (contiguous, no strided reads): ~5 ms for a 2048^2 chunk whatever
    its content (was 4-150 ms voting on mixed blocks).
    """
    x = _pad_even(block, (0, 1))
    if x.dtype == np.uint8:
        x = np.ascontiguousarray(x)
        h, w = x.shape
        pairs = x.view("<u2").reshape(h // 2, 2, w // 2)  # (row pair, top / bottom, column pair)
        top, bot = pairs[:, 0], pairs[:, 1]
        a, b = (top & 0xFF).astype(np.uint8), (top >> 8).astype(np.uint8)
        c, d = (bot & 0xFF).astype(np.uint8), (bot >> 8).astype(np.uint8)
        select = _select_u8
    else:
        a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
        select = np.where
    a_wins = a == b
    a_wins |= a == c
    a_wins |= a == d
    b_wins = b == c
    b_wins |= b == d
    out = select(c == d, c, a)
    out = select(b_wins, b, out)
    return select(a_wins, a, out).astype(block.dtype, copy=False)


def _select_u8(mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.where(mask, x, y)`` for uint8 arrays without branches (``mask`` is consumed):
    ``x & m | y & ~m`` with ``m`` = 0xFF where ``mask``."""
    m = mask.view(np.uint8)
    np.negative(m, out=m)  # True (1) -> 0xFF
    out = np.bitwise_and(x, m)
    np.invert(m, out=m)
    out |= y & m
    return out


def mean_downsample2(block: np.ndarray) -> np.ndarray:
    """2 x 2 block mean over the last two axes (for probabilities)."""
    b = _pad_even(block, (block.ndim - 2, block.ndim - 1)).astype(np.float32)
    h, w = b.shape[-2] // 2, b.shape[-1] // 2
    m = b.reshape(*b.shape[:-2], h, 2, w, 2).mean(axis=(-3, -1))
    if np.issubdtype(block.dtype, np.integer):
        m = np.round(m)
    return m.astype(block.dtype)


def levels_below(shape: tuple[int, int], min_side: int = 512) -> int:
    """How many 2x levels :func:`build_pyramid` adds below an image of ``shape``."""
    n, side = 0, max(shape)
    while side > min_side:
        side = (side + 1) // 2
        n += 1
    return n


def downsample2(block: np.ndarray, kind: str = "labels") -> np.ndarray:
    """One pyramid step: the mode for labels, the mean for anything else."""
    return mode_downsample2(block) if kind == "labels" else mean_downsample2(block)


def build_pyramid(group, name: str, kind: str = "labels", min_side: int = 512, chunk: int = 512, start: int = 0) -> int:
    """Add levels ``name/start+1, ...`` below ``name/start`` (levels up to ``start``
    already exist) until the image fits ``min_side``. Returns the number of levels
    (including level 0)."""
    import uuid

    import dask.array as da
    import dask.threaded
    import zarr

    from napari_dfa.io.codecs import fast_codecs

    level = start
    while True:
        with fast_codecs():  # read and written by zarrs where installed
            src = group[f"{name}/{level}"]
        h, w = src.shape[-2:]
        if max(h, w) <= min_side:
            return level + 1
        arr = da.from_zarr(src, name=f"dfa-pyramid-{uuid.uuid4().hex}")  # no hashing of the array
        lead = arr.shape[:-2]
        # method="tasks": dask's choice of method imports dask.distributed (~1 s) to look for a cluster
        arr = arr.rechunk((*lead, 2 * chunk, 2 * chunk), method="tasks")
        out_chunks = (
            *arr.chunks[:-2],
            tuple((c + 1) // 2 for c in arr.chunks[-2]),
            tuple((c + 1) // 2 for c in arr.chunks[-1]),
        )
        down = arr.map_blocks(downsample2, kind, chunks=out_chunks, dtype=arr.dtype)
        with fast_codecs():
            target = zarr.create_array(
                store=group.store,
                name=f"{group.path + '/' if group.path else ''}{name}/{level + 1}",
                shape=down.shape,
                chunks=(*lead, chunk, chunk),
                dtype=down.dtype,
                fill_value=0,
                overwrite=True,
                config={"write_empty_chunks": True},  # skips a slow all-fill test per chunk
            )
        # dask's threads, given as a function: a scheduler named by string (or none) has
        # dask import dask.distributed (~0.2-1 s) to look for a cluster client first
        down.store(target, lock=False, scheduler=dask.threaded.get)
        level += 1


def multiscales_attrs(name: str, n_levels: int, pixel_size: float | None, channel_axis: bool = False) -> dict:
    """OME-NGFF 0.5 ``multiscales`` metadata for ``n_levels`` 2x levels."""
    unit = "micrometer" if pixel_size else None
    base = float(pixel_size) if pixel_size else 1.0
    axes = [{"name": "c", "type": "channel"}] if channel_axis else []
    for ax in ("y", "x"):
        axes.append({"name": ax, "type": "space", **({"unit": unit} if unit else {})})
    datasets = []
    for i in range(n_levels):
        s = base * 2**i
        scale = ([1.0] if channel_axis else []) + [s, s]
        datasets.append({"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    return {"ome": {"version": "0.5", "multiscales": [{"name": name, "axes": axes, "datasets": datasets}]}}

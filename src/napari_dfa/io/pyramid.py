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
    to the first value in raster order. Blocks of one value (almost all of a slide's
    labels) are found with three comparisons; only the others are voted on."""
    x = _pad_even(block, (0, 1))
    a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
    mixed = a != b
    mixed |= a != c
    mixed |= a != d
    out = a.copy()  # a copy even where `a` is the block itself (one 2 x 2 block)
    if mixed.any():
        idx = np.nonzero(mixed)
        out[idx] = _mode4(a[idx], b[idx], c[idx], d[idx])
    return out.astype(block.dtype, copy=False)


def _mode4(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Element-wise mode of four values (ties: the earliest of a, b, c, d); six pairwise
    comparisons, no sorting."""
    ab, ac, ad = a == b, a == c, a == d
    bc, bd, cd = b == c, b == d, c == d
    # votes (minus one) for each candidate
    va = ab.astype(np.uint8) + ac + ad
    vb = ab.astype(np.uint8) + bc + bd
    vc = ac.astype(np.uint8) + bc + cd
    vd = ad.astype(np.uint8) + bd + cd
    out = d.copy()
    best = vd
    for v, cand in ((vc, c), (vb, b), (va, a)):  # later candidates first, so ties go to the earliest
        take = v >= best
        out[take] = cand[take]
        best = np.where(take, v, best)
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

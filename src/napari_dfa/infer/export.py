"""Exporting a finished segmentation store to a single TIFF or PNG (atomically)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from napari_dfa.errors import DFAError

__all__ = ["MAX_PNG_PIXELS", "export_labels"]

MAX_PNG_PIXELS = 16384 * 16384


def export_labels(store: str | Path, out: str | Path, tile: int = 512) -> Path:
    """Level-0 labels of ``store`` to ``out`` (.tif: tiled, streamed; .png: in memory)."""
    import zarr

    out = Path(out)
    arr = zarr.open_group(str(store), mode="r")["labels/0"]
    h, w = arr.shape
    suffix = out.suffix.lower()
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent if str(out.parent) else ".")
    os.close(fd)
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            def tiles():
                for y in range(0, h, tile):
                    for x in range(0, w, tile):
                        block = np.zeros((tile, tile), np.uint8)
                        part = arr[y : y + tile, x : x + tile]
                        block[: part.shape[0], : part.shape[1]] = part
                        yield block

            tifffile.imwrite(
                tmp, tiles(), shape=(h, w), dtype=np.uint8, tile=(tile, tile), compression="zlib", bigtiff=h * w > 2**31
            )
        elif suffix == ".png":
            if h * w > MAX_PNG_PIXELS:
                raise DFAError(f"the segmentation is {w}x{h} px, too big for PNG; write .tif or .zarr instead")
            import imageio.v3 as iio

            iio.imwrite(tmp, arr[:], extension=".png")
        else:
            raise DFAError(f"cannot export to {out.name}: use .tif or .png")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out

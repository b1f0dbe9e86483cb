"""Reading the engine's windows from the input.

:class:`WindowReader` reads ``(y0, y1, x0, x1)`` windows of a numpy, dask or zarr array
(3 channels, as numpy). With :meth:`WindowReader.share_chunks` a chunked zarr input (a
zarr store, or a TIFF through tifffile) decodes each chunk once for all the windows that
overlap it (:mod:`napari_dfa.infer.chunk_cache`) instead of once per window.
"""

from __future__ import annotations

import numpy as np

from napari_dfa.io.compute import to_numpy

__all__ = ["WindowReader"]


class WindowReader:
    """``reader.read(y0, y1, x0, x1)`` -> ``(y1 - y0, x1 - x0, 3)`` of ``arr``; thread-safe."""

    def __init__(self, arr) -> None:
        self.arr = arr
        self.cache = None

    @property
    def chunk_width(self) -> int:
        """The width of the input's chunks (zarr or dask), 0 for an unchunked array."""
        chunks = getattr(self.arr, "chunks", None)
        if not chunks or len(chunks) < 2:
            return 0
        c = chunks[1]
        return int(max(c)) if isinstance(c, tuple) else int(c)

    def share_chunks(self, windows, budget: int, keep_within: int | None = None) -> bool:
        """Decode each input chunk once for all of ``windows`` (every ``(y0, y1, x0, x1)``
        to be read, in about the order they will be read), keeping at most ``budget``
        bytes of decoded chunks, each only between uses at most ``keep_within`` windows
        apart (see :class:`~napari_dfa.infer.chunk_cache.ChunkCache`). Only for zarr
        arrays with chunks smaller than the windows; returns whether it applies."""
        import zarr

        from napari_dfa.infer.chunk_cache import ChunkCache

        windows = list(windows)
        arr = self.arr
        if budget <= 0 or not windows or not isinstance(arr, zarr.Array) or arr.ndim != 3:
            return False
        ch, cw = (int(c) for c in arr.chunks[:2])
        if ch >= max(w[1] - w[0] for w in windows) and cw >= max(w[3] - w[2] for w in windows):
            return False  # every window within one or two chunks: nothing to share
        self.cache = ChunkCache(self._read, arr.shape[:2], (ch, cw), windows, budget, keep_within)
        return True

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache.read(y0, y1, x0, x1)
        return self._read(y0, y1, x0, x1)

    def _read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return to_numpy(self.arr[y0:y1, x0:x1, :3], threads=False)  # reads run on the engine's pool

"""Reading the engine's windows from the input, from many threads at once.

zarr 3 runs every synchronous read through one event-loop thread, which schedules each
chunk's file read and decode and copies the decoded chunks into the result. With a fast
model (a GPU) that one thread became the engine's limit: window reads stayed at ~145 MP/s
with 1 to 16 reader threads on a 16-core machine. For arrays in a local zarr store each
reader thread here drives its own event loop (zarr's public ``async_array`` API), and the
loops share one pool for file reads and decoding, so reads scale with the threads.
Other inputs (numpy, dask, TIFF, remote stores) are read as they are. With
:meth:`WindowReader.share_chunks`, zarr inputs (local, TIFF) decode each chunk once for all
the windows that overlap it (:mod:`napari_dfa.infer.chunk_cache`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["WindowReader"]


def _local_zarr(arr) -> bool:
    """Whether ``arr`` is a zarr array in a local store (safe to read from other loops:
    a remote store's session is tied to zarr's own loop)."""
    try:
        import zarr
        from zarr.storage import LocalStore
    except ImportError:  # pragma: no cover - zarr is a dependency
        return False
    return isinstance(arr, zarr.Array) and hasattr(arr, "async_array") and isinstance(arr.store, LocalStore)


class WindowReader:
    """``reader.read(y0, y1, x0, x1)`` -> ``(y1 - y0, x1 - x0, C)`` array of ``arr``;
    thread-safe. ``close()`` ends the event loops and their pool. ``parallel=False``
    reads through zarr's own loop (no threads of its own: for one-off reads)."""

    def __init__(self, arr, io_workers: int = 0, parallel: bool = True) -> None:
        self.arr = arr
        self.parallel = parallel and _local_zarr(arr)
        self._local = threading.local()
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._lock = threading.Lock()
        self._pool = None
        self.cache = None
        if self.parallel:
            n = io_workers or min(32, (os.cpu_count() or 4) + 4)  # asyncio's default size
            self._pool = ThreadPoolExecutor(n, thread_name_prefix="dfa-decode")

    def share_chunks(self, windows, budget: int) -> bool:
        """Decode each input chunk once for all of ``windows`` (every ``(y0, y1, x0, x1)``
        to be read), keeping at most ``budget`` bytes of decoded chunks. Only for zarr
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
        self.cache = ChunkCache(self._read, arr.shape[:2], (ch, cw), windows, budget)
        return True

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache.read(y0, y1, x0, x1)
        return self._read(y0, y1, x0, x1)

    def _read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        sel = (slice(y0, y1), slice(x0, x1), slice(0, 3))
        if not self.parallel:
            win = self.arr[sel]
            return win.compute(scheduler="synchronous") if hasattr(win, "compute") else win
        return np.asarray(self._loop().run_until_complete(self.arr.async_array.getitem(sel)))

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = getattr(self._local, "loop", None)
        if loop is None:
            loop = asyncio.new_event_loop()
            loop.set_default_executor(self._pool)  # zarr's file reads and decodes run here
            self._local.loop = loop
            with self._lock:
                self._loops.append(loop)
        return loop

    def close(self) -> None:
        """Close the loops (call once no thread reads any more) and the shared pool."""
        with self._lock:
            loops, self._loops = self._loops, []
        for loop in loops:
            loop.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> WindowReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

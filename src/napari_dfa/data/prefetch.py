"""Background production of sampler batches, so training does not wait on the reads.

A daemon thread calls ``sampler.batch(batch_size, index)`` for ``index = start,
start + 1, ...`` into a bounded queue; the consumer takes them in order. Batches are a
function of their index, so the result is the same as calling the sampler in the loop.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Protocol

import numpy as np

__all__ = ["Prefetcher"]

_POLL_S = 0.05


class BatchSource(Protocol):
    def batch(self, n: int, index: int) -> tuple[np.ndarray, np.ndarray]: ...


class Prefetcher:
    """Batches ``start, start + 1, ...`` of ``sampler``, ``depth`` of them made ahead.

    ``depth=0`` makes each batch synchronously in :meth:`next`. ``wait_seconds`` adds up
    the time :meth:`next` spent blocked (for ``depth=0``: making the batch). An exception
    in the worker is raised again by :meth:`next`.
    """

    def __init__(self, sampler: BatchSource, batch_size: int, start: int = 0, depth: int = 2) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.index = start  # index of the batch next() returns
        self.depth = depth
        self.wait_seconds = 0.0
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(depth, 1))
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._thread = threading.Thread(target=self._work, args=(start,), name="dfa-prefetch", daemon=True)
            self._thread.start()

    def _work(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                item: tuple[str, Any] = ("ok", self.sampler.batch(self.batch_size, index))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                item = ("error", exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            if item[0] == "error":
                return
            index += 1

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch (blocks until it is ready)."""
        t = time.perf_counter()
        try:
            if self._thread is None:
                return self.sampler.batch(self.batch_size, self.index)
            if self._stop.is_set():
                raise RuntimeError("the prefetcher is closed")
            while True:
                try:
                    kind, value = self._queue.get(timeout=_POLL_S)
                    break
                except queue.Empty:
                    if not self._thread.is_alive() and self._queue.empty():
                        raise RuntimeError("the prefetch thread stopped") from None
            if kind == "error":
                self.close()
                raise value
            return value
        finally:
            self.wait_seconds += time.perf_counter() - t
            self.index += 1

    def close(self) -> None:
        """Stop the worker (returns once it has finished its current batch, or after 5 s)."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        return self.next()

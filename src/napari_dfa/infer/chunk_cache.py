"""Decoded input chunks shared by neighbouring windows.

Each window is its chunk plus a halo, so it overlaps its neighbours' windows: read
directly, a 2112^2 window (2048 + 2 x 32) over 512-px input chunks decodes 36 chunks for
16 chunks of core, and the chunks under the halo are decoded again by the neighbours.
:class:`ChunkCache` decodes every input chunk once per *lifetime*: it knows from the
windows, in the order they will be read, which ones use each chunk, keeps a decoded chunk
from one use to the next only while at most ``keep_within`` windows lie between them,
and forgets it after the last use of the lifetime. Read in vertical bands
(:func:`napari_dfa.infer.tiling.band_order`) that holds a few rows of a band's input
chunks, the same for any slide size; ``budget`` bytes bound it in any case (past the
budget, chunks are decoded again as needed).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["READ_BYTES", "ChunkCache"]

READ_BYTES = 32 << 20  # chunks read together at most (as 8-bit RGB)


class _Entry:
    __slots__ = ("data", "error", "ready")

    def __init__(self) -> None:
        self.data: np.ndarray | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()


class ChunkCache:
    """Windows of an image assembled from its decoded chunks, each decoded once.

    Args:
        read: ``read(y0, y1, x0, x1)`` -> the image's pixels there (thread-safe).
        shape: the image's ``(H, W)``.
        chunks: its chunk shape ``(ch, cw)``.
        windows: every ``(y0, y1, x0, x1)`` that :meth:`read` will be asked for, each
            as many times as it will be asked, in about the order it will be asked
            (the order only decides how long chunks are kept, never what is read).
        budget: bytes of decoded chunks kept at most (plus the chunks of the windows
            being read: a window's chunks are decoded together, then dropped if over).
        keep_within: keep a decoded chunk between two of its uses only if at most this
            many windows lie between them (else it is decoded again); ``None``: always.
    """

    def __init__(
        self,
        read: Callable[[int, int, int, int], np.ndarray],
        shape: tuple[int, int],
        chunks: tuple[int, int],
        windows: Iterable[tuple[int, int, int, int]],
        budget: int,
        keep_within: int | None = None,
    ) -> None:
        self._read = read
        self.shape = (int(shape[0]), int(shape[1]))
        self.ch, self.cw = int(chunks[0]), int(chunks[1])
        self.budget = budget
        self._lifetimes = self._plan(windows, keep_within)  # per chunk: uses in each lifetime to come
        self._entries: dict[tuple[int, int], _Entry] = {}
        self._lock = threading.Lock()
        self.held = 0  # bytes of decoded chunks kept now
        self.peak = 0
        self.decoded = 0  # chunks decoded so far

    def _plan(self, windows, keep_within: int | None) -> dict[tuple[int, int], deque]:
        """Per chunk, the number of uses in each of its lifetimes, in order."""
        lifetimes: dict[tuple[int, int], deque] = {}
        last: dict[tuple[int, int], int] = {}
        for i, w in enumerate(windows):
            for key in self._keys(*w):
                uses = lifetimes.get(key)
                if uses is None:
                    lifetimes[key] = deque([1])
                elif keep_within is not None and i - last[key] > keep_within + 1:
                    uses.append(1)  # too far from the previous use: a new lifetime
                else:
                    uses[-1] += 1
                last[key] = i
        return lifetimes

    def _keys(self, y0: int, y1: int, x0: int, x1: int):
        for cy in range(y0 // self.ch, (y1 - 1) // self.ch + 1):
            for cx in range(x0 // self.cw, (x1 - 1) // self.cw + 1):
                yield cy, cx

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The window ``y0:y1, x0:x1`` (one of the ``windows`` given at construction).
        The window's chunks that no other read holds or is decoding are read together
        (one read per rectangle of them, so the store decodes them concurrently)."""
        keys = list(self._keys(y0, y1, x0, x1))
        entries, owned = [], []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = _Entry()
                    owned.append((key, entry))
                entries.append(entry)
        if owned:
            self._decode(owned)
        out, error = None, None
        for key, entry in zip(keys, entries):  # every use is counted, even after an error
            block, err = self._use(key, entry)
            error = error or err
            if block is None:
                continue
            by, bx = key[0] * self.ch, key[1] * self.cw
            sy0, sy1 = max(y0, by), min(y1, by + block.shape[0])
            sx0, sx1 = max(x0, bx), min(x1, bx + block.shape[1])
            if out is None:
                out = np.empty((y1 - y0, x1 - x0, *block.shape[2:]), block.dtype)
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = block[sy0 - by : sy1 - by, sx0 - bx : sx1 - bx]
        if error is not None:
            raise error
        return out

    def _decode(self, owned: list) -> None:
        """Decode the chunks of ``owned`` (``(key, entry)`` in row-major order): one read
        per rectangle of them; each chunk that another window will use is copied out (it
        outlives the region), the others are views."""
        try:
            # at most READ_BYTES per read (chunks of a striped TIFF can span the slide)
            for (cy0, cy1, cx0, cx1), group in _rectangles(owned, max(1, READ_BYTES // (self.ch * self.cw * 3))):
                ys, ye = cy0 * self.ch, min(cy1 * self.ch, self.shape[0])
                xs, xe = cx0 * self.cw, min(cx1 * self.cw, self.shape[1])
                try:
                    region, error = np.asarray(self._read(ys, ye, xs, xe)), None
                except BaseException as exc:  # the readers of these chunks all see the error
                    region, error = None, exc
                for (cy, cx), entry in group:
                    if region is not None:
                        oy, ox = cy * self.ch - ys, cx * self.cw - xs
                        entry.data = region[oy : oy + self.ch, ox : ox + self.cw]
                        if self._used_again((cy, cx)):  # kept: its own memory, not the region's
                            entry.data = entry.data.copy()
                    entry.error = error
                    with self._lock:
                        self.decoded += 1
                        if entry.data is not None:
                            self.held += entry.data.nbytes
                            self.peak = max(self.peak, self.held)
                    entry.ready.set()
        finally:  # never leave a reader waiting
            for _, entry in owned:
                if not entry.ready.is_set():
                    entry.error = entry.error or RuntimeError("chunk was not decoded")
                    entry.ready.set()

    def _used_again(self, key: tuple[int, int]) -> bool:
        """Whether chunk ``key`` has another use in this lifetime after the one being
        read (a chunk used once is a view into the decoded region, which goes with it)."""
        with self._lock:
            uses = self._lifetimes.get(key)
            return bool(uses) and uses[0] > 1

    def _use(self, key: tuple[int, int], entry: _Entry):
        """Wait for ``entry``, count one use of chunk ``key``; ``(data, error)``."""
        entry.ready.wait()
        data, error = entry.data, entry.error
        with self._lock:
            uses = self._lifetimes.get(key)
            last = True  # a window that was not announced: nothing to keep it for
            if uses:
                uses[0] -= 1
                last = uses[0] <= 0
                if last:
                    uses.popleft()
            done = last or error is not None or self.held > self.budget
            if done and self._entries.get(key) is entry:  # lifetime over, or over budget (decoded again)
                del self._entries[key]
                if data is not None:
                    self.held -= data.nbytes
        return data, error


def _rectangles(owned: list, max_chunks: int):
    """``owned`` (``((cy, cx), entry)`` in row-major order) as rectangles of at most
    ``max_chunks`` chunks: ``((cy0, cy1, cx0, cx1), members)``; the whole box when they
    fill it, else runs of consecutive chunks row by row (cut to ``max_chunks``)."""
    ys = [k[0] for k, _ in owned]
    xs = [k[1] for k, _ in owned]
    box = (min(ys), max(ys) + 1, min(xs), max(xs) + 1)
    if len(owned) == (box[1] - box[0]) * (box[3] - box[2]) <= max_chunks:
        yield box, owned
        return
    runs: list = []
    for item in owned:
        (cy, cx), _ = item
        last = runs[-1][-1][0] if runs else None
        if last is None or cy != last[0] or cx != last[1] + 1 or len(runs[-1]) >= max_chunks:
            runs.append([])
        runs[-1].append(item)
    for run in runs:
        (cy, cx0), (_, cx1) = run[0][0], run[-1][0]
        yield (cy, cy + 1, cx0, cx1 + 1), run

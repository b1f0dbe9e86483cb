import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from napari_dfa.infer.chunk_cache import ChunkCache, _rectangles
from napari_dfa.infer.tiling import band_order, chunk_grid


class CountingImage:
    """An image whose reads are counted (calls, and the chunks each covers) and can fail."""

    def __init__(self, shape=(700, 530, 3), fail_at=None, chunks=(64, 48)):
        self.img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
        self.reads = []  # origins of the chunks read, once per read that covered them
        self.calls = 0
        self.chunks = chunks
        self.lock = threading.Lock()
        self.fail_at = fail_at

    def read(self, y0, y1, x0, x1):
        ch, cw = self.chunks
        assert y0 % ch == 0 and x0 % cw == 0  # whole chunks only
        with self.lock:
            self.calls += 1
            self.reads += [(y, x) for y in range(y0, y1, ch) for x in range(x0, x1, cw)]
        if self.fail_at is not None and y0 <= self.fail_at[0] < y1 and x0 <= self.fail_at[1] < x1:
            raise OSError("truncated chunk")
        return self.img[y0:y1, x0:x1]


def _windows(shape, tile=128, halo=32):
    return [(c.wy0, c.wy1, c.wx0, c.wx1) for c in chunk_grid(shape, tile, halo)]


@pytest.mark.parametrize("threads", [1, 4])
def test_windows_equal_direct_reads_and_each_chunk_is_decoded_once(threads):
    src = CountingImage()
    wins = _windows(src.img.shape[:2])
    cache = ChunkCache(src.read, src.img.shape[:2], (64, 48), wins, budget=1 << 30)
    with ThreadPoolExecutor(threads) as ex:
        got = list(ex.map(lambda w: cache.read(*w), wins))
    for (y0, y1, x0, x1), win in zip(wins, got):
        assert np.array_equal(win, src.img[y0:y1, x0:x1])
    n_chunks = -(-700 // 64) * -(-530 // 48)
    assert len(src.reads) == len(set(src.reads)) == n_chunks  # once each, no more
    assert src.calls < n_chunks / 3  # the chunks a window needs are read together
    direct = sum(len(list(cache._keys(*w))) for w in wins)
    assert direct > 2 * n_chunks  # what reading the windows directly would have decoded
    assert cache.held == 0 and not cache._entries  # everything forgotten after its last use


def test_memory_stays_within_about_two_chunk_rows_in_row_major_order():
    src = CountingImage((1024, 1024, 3), chunks=(64, 64))
    wins = _windows((1024, 1024))
    cache = ChunkCache(src.read, (1024, 1024), (64, 64), wins, budget=1 << 30)
    for w in wins:
        cache.read(*w)
    row = 64 * 1024 * 3  # one row of chunks across the image
    assert cache.peak <= 4 * row  # not the whole image (16 rows)


@pytest.mark.parametrize("threads", [1, 3])
def test_in_bands_memory_does_not_grow_with_the_slide_and_chunks_are_decoded_about_once(threads):
    """Read in vertical bands with ``keep_within`` about a band's windows, the cache holds
    a few windows' chunks however wide or tall the slide, and a chunk is decoded again
    only where two bands share it (its lifetime would span a whole band)."""
    chunk_bytes = 64 * 64 * 3
    per_window = 16  # a 192^2 window over 64-px chunks touches at most 4 x 4

    def run(shape, keep_within):
        src = CountingImage((*shape, 3), chunks=(64, 64))
        wins = [(c.wy0, c.wy1, c.wx0, c.wx1) for c in band_order(chunk_grid(shape, 128, 32), 2)]
        cache = ChunkCache(src.read, shape, (64, 64), wins, budget=1 << 30, keep_within=keep_within)
        with ThreadPoolExecutor(threads) as ex:
            got = list(ex.map(lambda win: cache.read(*win), wins))
        for (y0, y1, x0, x1), win in zip(wins, got):
            assert np.array_equal(win, src.img[y0:y1, x0:x1])
        assert cache.held == 0 and not cache._entries
        return cache.peak // chunk_bytes, len(src.reads) / (shape[0] // 64 * shape[1] // 64)

    for shape in [(512, 512), (512, 2048), (2048, 2048)]:
        peak, decodes = run(shape, 2 * 2 + threads)
        assert peak <= (threads + 2) * per_window  # a few windows' chunks, not rows of the slide
        assert 1 <= decodes <= 1.5
    peak, decodes = run((2048, 2048), None)  # without lifetimes: decoded once, but the
    assert decodes == 1 and peak > (threads + 2) * per_window  # chunks two bands share wait for the next band


def test_budget_bounds_memory_and_reads_stay_correct():
    src = CountingImage()
    wins = _windows(src.img.shape[:2])
    budget = 3 * 64 * 48 * 3  # three chunks
    cache = ChunkCache(src.read, src.img.shape[:2], (64, 48), wins, budget=budget)
    for w in wins:
        assert np.array_equal(cache.read(*w), src.img[w[0] : w[1], w[2] : w[3]])
    per_window = max(len(list(cache._keys(*w))) for w in wins)  # decoded together, then dropped
    assert cache.peak <= budget + 64 * 48 * 3 * per_window
    assert len(src.reads) > len(set(src.reads))  # over budget, chunks are decoded again
    assert cache.held == 0


def test_a_failed_chunk_fails_every_window_over_it():
    """Every window over an unreadable chunk fails with the store's error (chunks read
    together with it may fail their windows too); every other window is right."""
    src = CountingImage(fail_at=(64, 48))
    wins = _windows(src.img.shape[:2])
    cache = ChunkCache(src.read, src.img.shape[:2], (64, 48), wins, budget=1 << 30)
    failed = []
    for w in wins:
        try:
            assert np.array_equal(cache.read(*w), src.img[w[0] : w[1], w[2] : w[3]])
        except OSError as exc:
            assert "truncated" in str(exc)
            failed.append(w)
    over = [w for w in wins if (64, 48) in [(cy * 64, cx * 48) for cy, cx in cache._keys(*w)]]
    assert over and all(w in failed for w in over)
    assert len(failed) < len(wins) and cache.held == 0 and not cache._entries


def test_chunks_are_read_in_rectangles_of_bounded_size():
    def rects(keys, cap):
        return [(box, [k for k, _ in members]) for box, members in _rectangles([(k, None) for k in keys], cap)]

    full = [(y, x) for y in range(2, 4) for x in range(5, 8)]
    assert rects(full, 6) == [((2, 4, 5, 8), full)]  # a filled box: one read
    # over the cap: row runs, cut to the cap (a striped TIFF's chunks span the slide)
    assert rects(full, 2) == [
        ((2, 3, 5, 7), full[:2]),
        ((2, 3, 7, 8), full[2:3]),
        ((3, 4, 5, 7), full[3:5]),
        ((3, 4, 7, 8), full[5:]),
    ]
    ell = [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 2)]  # not a box: row runs
    assert rects(ell, 100) == [
        ((0, 1, 0, 3), ell[:3]),
        ((1, 2, 0, 1), ell[3:4]),
        ((2, 3, 0, 1), ell[4:5]),
        ((2, 3, 2, 3), ell[5:]),
    ]


def test_reads_capped_to_single_chunks_give_the_same_windows(monkeypatch):
    from napari_dfa.infer import chunk_cache

    monkeypatch.setattr(chunk_cache, "READ_BYTES", 1)  # every chunk read alone
    src = CountingImage()
    wins = _windows(src.img.shape[:2])
    cache = ChunkCache(src.read, src.img.shape[:2], (64, 48), wins, budget=1 << 30)
    for w in wins:
        assert np.array_equal(cache.read(*w), src.img[w[0] : w[1], w[2] : w[3]])
    assert src.calls == len(src.reads) == len(set(src.reads)) == -(-700 // 64) * -(-530 // 48)


def test_kept_chunks_own_their_memory_and_decoded_regions_go_with_their_window():
    """A chunk kept for a later window is a copy, so the region it was decoded in (all
    the window's new chunks) is freed with the window."""
    import weakref

    src = CountingImage((512, 512, 3), chunks=(64, 64))
    regions = []

    def read(y0, y1, x0, x1):
        region = np.array(src.read(y0, y1, x0, x1))  # a fresh array, as a decoder returns
        regions.append(weakref.ref(region))
        return region

    wins = _windows((512, 512))
    cache = ChunkCache(read, (512, 512), (64, 64), wins, budget=1 << 30)
    for w in wins:
        assert np.array_equal(cache.read(*w), src.img[w[0] : w[1], w[2] : w[3]])
        assert all(r() is None for r in regions)  # no kept chunk pins a region
        assert all(e.data.base is None for e in cache._entries.values())
    assert regions and cache.held == 0

import sys

import numpy as np
import pytest

from napari_dfa import memory

MB = 1 << 20


def _rss() -> int:
    """Resident bytes from the page tables (statm's counters lag behind by up to 64 faults)."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no Rss in smaps_rollup")


def _big_buffer(mb: int = 96) -> tuple[int, int]:
    """Touch and free a big buffer: ``(resident growth while alive, growth kept after free)``."""
    if not memory._active:
        memory.release_memory()  # no free heap pages left from earlier tests
    before = _rss()
    buf = np.ones(mb * MB, np.uint8)
    grew = _rss() - before
    del buf
    return grew, _rss() - before


@pytest.mark.skipif(not sys.platform.startswith("linux") or memory._libc() is None, reason="glibc only")
def test_reuse_freed_memory_keeps_big_buffers_for_reuse_then_gives_them_back():
    grew, kept = _big_buffer()
    assert grew > 90 * MB and kept < 16 * MB  # glibc's default: a fresh mmap, unmapped on free
    before = _rss()
    with memory.reuse_freed_memory():
        with memory.reuse_freed_memory():  # nested use is counted
            grew, kept = _big_buffer()
            assert grew > 90 * MB and kept > 80 * MB  # kept in the heap for the next window
            grew, kept = _big_buffer()
            assert grew < 16 * MB  # the next buffer reuses it: no new pages, no page faults
        assert memory._active == 1
    assert memory._active == 0
    assert _rss() - before < 16 * MB  # on exit the free memory goes back to the OS
    grew, kept = _big_buffer()
    assert grew > 90 * MB and kept < 16 * MB  # and glibc's defaults are back


def test_reuse_freed_memory_is_a_noop_without_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_libc", lambda: None)
    with memory.reuse_freed_memory():
        assert memory._active == 0
    memory.release_memory()

import threading
from concurrent.futures import ThreadPoolExecutor

import dask.array as da
import numpy as np
import zarr

from napari_dfa.infer.reader import WindowReader


def _image(shape=(300, 260, 4)):
    return np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)


def _decode_threads() -> int:
    return sum(t.name.startswith("dfa-decode") for t in threading.enumerate())


def test_local_zarr_windows_read_in_parallel_equal_slices(tmp_path):
    img = _image()
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=img.shape, chunks=(64, 48, 4), dtype="uint8")
    arr[:] = img
    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    windows = [(0, 300, 0, 260), (5, 133, 47, 200), (250, 300, 255, 260), (64, 65, 0, 1)] * 4
    with WindowReader(arr, io_workers=3) as reader:
        assert reader.parallel  # each reader thread drives its own event loop
        with ThreadPoolExecutor(4) as ex:
            got = list(ex.map(lambda w: reader.read(*w), windows))
        assert _decode_threads() > 0
    for (y0, y1, x0, x1), win in zip(windows, got):
        assert isinstance(win, np.ndarray) and np.array_equal(win, img[y0:y1, x0:x1, :3])
    assert _decode_threads() == 0  # closing ends the shared pool


def test_other_inputs_are_read_as_they_are():
    img = _image()
    store = zarr.storage.MemoryStore()
    mem = zarr.create_array(store, shape=img.shape, chunks=(64, 64, 4), dtype="uint8")
    mem[:] = img
    for arr in (img, da.from_array(img, chunks=(100, 70, 4)), mem):
        with WindowReader(arr) as reader:
            assert not reader.parallel
            assert np.array_equal(np.asarray(reader.read(10, 90, 20, 250)), img[10:90, 20:250, :3])
    with WindowReader(zarr.open_array(store, mode="r"), parallel=False) as reader:
        assert not reader.parallel

from concurrent.futures import ThreadPoolExecutor

import dask.array as da
import numpy as np
import zarr

from napari_dfa.infer.reader import WindowReader


def _image(shape=(300, 260, 4)):
    return np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)


def test_windows_of_any_input_are_three_channel_numpy_slices(tmp_path):
    img = _image()
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=img.shape, chunks=(64, 48, 4), dtype="uint8")
    arr[:] = img
    windows = [(0, 300, 0, 260), (5, 133, 47, 200), (250, 300, 255, 260), (64, 65, 0, 1)]
    for src in (img, da.from_array(img, chunks=(100, 70, 4)), zarr.open_array(str(tmp_path / "a.zarr"), mode="r")):
        reader = WindowReader(src)
        for y0, y1, x0, x1 in windows:
            win = reader.read(y0, y1, x0, x1)
            assert isinstance(win, np.ndarray) and np.array_equal(win, img[y0:y1, x0:x1, :3])


def test_shared_chunks_apply_to_chunked_zarr_only(tmp_path):
    img = _image()
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=img.shape, chunks=(64, 48, 4), dtype="uint8")
    arr[:] = img
    windows = [(0, 128, 0, 128), (96, 224, 0, 128), (0, 128, 96, 224), (96, 224, 96, 224)]
    reader = WindowReader(arr)
    assert reader.share_chunks(windows, 1 << 20)
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda w: reader.read(*w), windows))
    for (y0, y1, x0, x1), win in zip(windows, got):
        assert np.array_equal(win, img[y0:y1, x0:x1, :3])
    assert reader.cache.decoded == 4 * 5 and reader.cache.held == 0  # 20 chunks under 4 windows
    assert not WindowReader(img).share_chunks(windows, 1 << 20)  # in memory: nothing to decode
    assert not WindowReader(arr).share_chunks(windows, 0)  # budget 0 = off
    assert not WindowReader(arr).share_chunks([(0, 60, 0, 40)], 1 << 20)  # windows within a chunk
    assert WindowReader(arr).chunk_width == 48 and WindowReader(img).chunk_width == 0
    assert WindowReader(da.from_array(img, chunks=(50, (30, 130, 100), 4))).chunk_width == 130

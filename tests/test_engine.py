import json

import dask.array as da
import numpy as np
import pytest
import torch
import zarr

from napari_dfa.data.synthetic import generate_tissue
from napari_dfa.errors import DFAError
from napari_dfa.infer.engine import EngineConfig, segment
from napari_dfa.infer.tiling import chunk_grid
from napari_dfa.model import DFASegmenter, ModelConfig
from napari_dfa.train import run_to_end

SMALL = dict(
    backbone_channels=[8, 16, 16, 24],
    backbone_blocks=[1, 1, 1, 1],
    hidden_dim=16,
    mask_dim=8,
    num_heads=2,
    dec_layers=3,
    ffn_dim=32,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DFASegmenter(ModelConfig(class_names=["a", "b", "c"], **SMALL)).eval()


@pytest.fixture(scope="module")
def image():
    return generate_tissue((300, 420), seed=5).image


def _cfg(**kw):
    base = dict(tile=96, halo=96, device="cpu", tissue_detection=False, read_workers=2)
    base.update(kw)
    return EngineConfig(**base)


def _labels(path):
    return zarr.open_group(str(path), mode="r")["labels/0"][:]


def test_tiled_equals_whole_image_forward(model, image, tmp_path):
    res = run_to_end(segment(image, model, tmp_path / "out.zarr", _cfg()))
    tiled = _labels(res.path)
    with torch.inference_mode():
        whole = model.predict_logits(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0]
    expected = whole.argmax(0).numpy() + 1
    assert tiled.shape == image.shape[:2] and tiled.dtype == np.uint8
    assert (tiled == expected).mean() > 0.995
    assert res.tiles == 4 * 5 and res.path.name == "out.zarr"
    attrs = dict(zarr.open_group(str(res.path), mode="r").attrs)["napari_dfa"]
    assert attrs["complete"] and attrs["class_names"] == ["a", "b", "c"]


def test_any_chunking_and_dask_input_give_the_same_result(model, image, tmp_path):
    a = _labels(run_to_end(segment(image, model, tmp_path / "a", _cfg())).path)
    lazy = da.from_array(image, chunks=(37, 53, 3))
    b = _labels(run_to_end(segment(lazy, model, tmp_path / "b", _cfg())).path)
    assert np.array_equal(a, b)


def test_zarr_input_with_shared_decoded_chunks_gives_the_same_result(model, image, tmp_path, monkeypatch):
    """A zarr image read through the decoded-chunk cache (``input_cache_mb``, on by
    default) segments exactly as the in-memory image, decoding each chunk once (in one
    band) or a little more (in bands one chunk wide), and without it."""
    from napari_dfa.infer import chunk_cache, engine

    arr = zarr.create_array(str(tmp_path / "in.zarr"), shape=image.shape, chunks=(40, 56, 3), dtype="uint8")
    arr[:] = image
    caches = []
    real = chunk_cache.ChunkCache.__init__

    def spy(self, *a, **kw):
        real(self, *a, **kw)
        caches.append(self)

    monkeypatch.setattr(chunk_cache.ChunkCache, "__init__", spy)
    ref = _labels(run_to_end(segment(image, model, tmp_path / "ref", _cfg())).path)
    assert not caches  # nothing to share for an in-memory image
    off = run_to_end(segment(str(tmp_path / "in.zarr"), model, tmp_path / "off", _cfg(input_cache_mb=0)))
    assert not caches and np.array_equal(_labels(off.path), ref)
    res = run_to_end(segment(str(tmp_path / "in.zarr"), model, tmp_path / "z", _cfg()))
    assert np.array_equal(_labels(res.path), ref)
    (cache,) = caches
    n_chunks = -(-300 // 40) * -(-420 // 56)
    assert cache.decoded == n_chunks and cache.held == 0
    # narrow bands (4 input chunks, 7 output chunks of 32 px): chunks that two bands
    # share are decoded again for the second, still far fewer times than window by window
    monkeypatch.setattr(engine, "BAND_PX", 32)
    small = {"tile": 32, "halo": 32}
    a = _labels(
        run_to_end(segment(str(tmp_path / "in.zarr"), model, tmp_path / "b0", _cfg(input_cache_mb=0, **small))).path
    )
    b = _labels(run_to_end(segment(str(tmp_path / "in.zarr"), model, tmp_path / "b1", _cfg(**small))).path)
    assert np.array_equal(a, b)
    direct = sum(  # input chunks under each window
        ((c.wy1 - 1) // 40 - c.wy0 // 40 + 1) * ((c.wx1 - 1) // 56 - c.wx0 // 56 + 1)
        for c in chunk_grid((300, 420), 32, 32)
    )
    assert n_chunks < caches[-1].decoded < direct / 2 and caches[-1].held == 0


def test_blended_subtiles_match_single_windows(model, image, tmp_path):
    def probs(name, **kw):
        res = run_to_end(segment(image, model, tmp_path / name, _cfg(tile=192, halo=64, probabilities="float16", **kw)))
        return zarr.open_group(str(res.path), mode="r")["probabilities/0"][:].astype(np.float32)

    single = probs("a")
    for blend in ("cosine", "gaussian"):
        blended = probs(f"b_{blend}", max_window=160, overlap=0.5, blend=blend)
        assert np.abs(blended - single).mean() < 0.01
        assert (blended.argmax(0) == single.argmax(0)).mean() > 0.9


def test_probabilities_and_pyramid(image, tmp_path):
    from napari_dfa.sample import load_default_model

    res = run_to_end(segment(image, load_default_model(), tmp_path / "p", _cfg(probabilities="uint8")))
    g = zarr.open_group(str(res.path), mode="r")
    p = g["probabilities/0"][:]
    assert p.shape == (5, 300, 420) and p.dtype == np.uint8
    assert np.abs(p.astype(int).sum(0) - 255).max() <= 3  # softmax sums to 1
    top2 = np.sort(p.astype(int), axis=0)[-2:]
    clear = top2[1] - top2[0] >= 2  # uint8 rounding can only flip near-ties
    assert clear.mean() > 0.9
    assert np.array_equal((p.argmax(0) + 1)[clear], g["labels/0"][:][clear])
    ms = g["labels"].attrs["ome"]["multiscales"][0]["datasets"]
    assert [d["path"] for d in ms] == ["0"]  # 420 px fits one level with min_side 512


def test_inline_pyramid_levels_equal_the_pyramid_of_level_0(model, tmp_path):
    """Levels written with each chunk (tile 512: level 1) and the rest built at the end
    equal mode / mean downsampling of the whole level 0, with odd sizes, glass chunks
    skipped and partly covered chunks restricted to their tissue."""
    from napari_dfa.io.pyramid import mean_downsample2, mode_downsample2

    img = np.full((1100, 1250, 3), 245, np.uint8)
    img[:, :700] = generate_tissue((1100, 700), seed=4).image
    cfg = _cfg(tile=512, halo=32, tissue_detection=True, probabilities="uint8")
    res = run_to_end(segment(img, model, tmp_path / "pyr", cfg))
    g = zarr.open_group(str(res.path), mode="r")
    assert res.skipped >= 1
    assert [d["path"] for d in g["labels"].attrs["ome"]["multiscales"][0]["datasets"]] == ["0", "1", "2"]
    assert g["labels/1"].chunks == (256, 256)  # the chunk's block: written with the chunk
    for lv in (1, 2):
        assert np.array_equal(g[f"labels/{lv}"][:], mode_downsample2(g[f"labels/{lv - 1}"][:]))
        assert np.array_equal(g[f"probabilities/{lv}"][:], mean_downsample2(g[f"probabilities/{lv - 1}"][:]))
    assert g["labels/2"].shape == (275, 313)


def test_concurrent_streams_give_the_same_labels_and_split_the_threads(model, image, tmp_path, monkeypatch):
    """Two compute streams (the CPU default with >= 2 threads) give the labels of one;
    each stream runs with half the caller's torch threads, the caller's are unchanged."""
    from napari_dfa.infer import predictor

    seen = []
    real = predictor.Predictor.__call__

    def spy(self, chunks, windows):
        seen.append(torch.get_num_threads())
        return real(self, chunks, windows)

    monkeypatch.setattr(predictor.Predictor, "__call__", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = _labels(run_to_end(segment(image, model, tmp_path / "one", _cfg(streams=1))).path)
        assert set(seen) == {2}
        seen.clear()
        res = run_to_end(segment(image, model, tmp_path / "two", _cfg()))  # auto: 2 streams
        two = _labels(res.path)
        assert set(seen) == {1} and len(seen) == 20
        assert res.device == "cpu (2 threads, 2 streams)"
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert (one == two).mean() > 0.999


def test_stream_thread_shares_add_up():
    from napari_dfa.infer.predictor import thread_shares

    def shares(threads, streams):
        q = thread_shares(threads, streams)
        return sorted(q.get() for _ in range(streams))

    assert shares(2, 2) == [1, 1]
    assert shares(3, 2) == [1, 2]  # no thread left idle
    assert shares(7, 2) == [3, 4]
    assert shares(1, 2) == [1, 1]  # never below one


@pytest.mark.parametrize("kind", [None, "uint8", "float16"])
def test_device_readout_equals_the_strip_readout(model, image, kind, monkeypatch):
    """The GPU's readout (whole core on the device, one copy back) gives the CPU's strip
    readout's labels and probabilities (run here on the CPU, without pinned memory)."""
    from napari_dfa.infer import predictor
    from napari_dfa.infer.tiling import chunk_grid

    monkeypatch.setattr(predictor, "READOUT_ROWS", 64)  # several strips per core, the last short

    chunks = chunk_grid(image.shape[:2], 160, 32)[:2]  # windows of the same shape
    pred = predictor.Predictor(model, torch.device("cpu"), _cfg(probabilities=kind))
    x = torch.from_numpy(np.stack([image[c.wy0 : c.wy1, c.wx0 : c.wx1] for c in chunks]))
    x = x.permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        region_logits = pred.logits(x)
        strips = [pred._readout(region_logits, i, c) for i, c in enumerate(chunks)]
        device = pred._readout_device(region_logits, chunks)
    for (lab_s, pr_s), (lab_d, pr_d) in zip(strips, device):
        assert lab_d.dtype == np.uint8 and np.array_equal(lab_s, lab_d)
        assert set(np.unique(lab_d)) <= {1, 2, 3}
        if kind is None:
            assert pr_s is None and pr_d is None
        else:
            assert pr_d.dtype == np.dtype(kind) and np.array_equal(pr_s, pr_d)


def test_auto_streams_per_device():
    from napari_dfa.infer.engine import auto_streams

    cpu = torch.device("cpu")
    assert auto_streams(cpu, 1) == 1 and auto_streams(cpu, 2) == 2 and auto_streams(cpu, 16) == 2
    assert auto_streams(torch.device("cuda"), 16) == 1
    assert auto_streams(torch.device("mps"), 8) == 1


def test_cancel_leaves_no_complete_store_and_resume_is_identical(model, image, tmp_path):
    ref = _labels(run_to_end(segment(image, model, tmp_path / "ref", _cfg())).path)
    out = tmp_path / "run.zarr"
    gen = segment(image, model, out, _cfg())
    events = [next(gen) for _ in range(3)]
    gen.close()  # cancel
    assert not out.exists()
    partial = tmp_path / "run.zarr.partial"
    assert partial.exists()
    assert not json.loads((partial / "zarr.json").read_text())["attributes"]["napari_dfa"]["complete"]
    assert events[-1].done == 3 and events[-1].total == 20
    events2 = []
    res = run_to_end(segment(image, model, out, _cfg()), events2.append)
    assert res.resumed >= 3 and events2[0].resumed >= 3
    assert np.array_equal(_labels(res.path), ref)
    assert not partial.exists()


def test_cancel_drops_the_queued_batch(model, image, tmp_path, monkeypatch):
    """One batch more than the streams waits in the queue (so a stream never idles);
    cancelling drops it: only the batch computing at the time finishes."""
    import time

    from napari_dfa.infer import predictor

    calls = []
    real = predictor.Predictor.__call__

    def slow(self, chunks, windows):
        calls.append(len(chunks))
        time.sleep(0.2)
        return real(self, chunks, windows)

    monkeypatch.setattr(predictor.Predictor, "__call__", slow)
    gen = segment(image, model, tmp_path / "c.zarr", _cfg(streams=1))
    ev = next(gen)  # the first batch is done, the second computing, the third queued
    gen.close()
    time.sleep(0.3)
    assert ev.done == 1 and len(calls) == 2


def test_existing_outputs_are_protected(model, image, tmp_path):
    other = tmp_path / "mine.zarr"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(DFAError, match="not a napari-dfa segmentation"):
        next(segment(image, model, other, _cfg()))
    assert (other / "notes.txt").read_text() == "precious"
    done = run_to_end(segment(image, model, tmp_path / "done.zarr", _cfg())).path
    with pytest.raises(DFAError, match="--overwrite"):
        next(segment(image, model, done, _cfg()))
    run_to_end(segment(image, model, done, _cfg(overwrite=True)))
    # an interrupted run with other settings is not silently mixed in
    gen = segment(image, model, tmp_path / "x.zarr", _cfg())
    next(gen)
    gen.close()
    with pytest.raises(DFAError, match="different input, model or settings"):
        next(segment(image, model, tmp_path / "x.zarr", _cfg(halo=32)))


def test_tissue_detection_skips_glass(model, tmp_path):
    img = np.full((256, 512, 3), 245, np.uint8)  # glass
    img[:, :256] = generate_tissue((256, 256), seed=1).image
    res = run_to_end(segment(img, model, tmp_path / "t", _cfg(tile=128, halo=0, tissue_detection=True)))
    assert res.skipped == 4 and res.tiles == 8
    lab = _labels(res.path)
    assert (lab[:, 256:] == 0).all() and (lab[:, :256] > 0).all()


def test_glass_on_a_pyramid_level_is_skipped_without_reading_it(model, tmp_path, monkeypatch):
    """With a pyramid, chunks that are glass on a low-resolution level are skipped before
    their full-resolution windows are read; the labels equal those of the same image
    without a pyramid (where every window is read and tested at full resolution)."""
    from napari_dfa.infer import engine
    from napari_dfa.infer.tiling import chunk_grid
    from napari_dfa.infer.tissue import TissueDetector
    from napari_dfa.io.pyramid import mean_downsample2

    img = np.full((768, 1024, 3), 245, np.uint8)  # glass right of x = 400
    img[:, :400] = generate_tissue((768, 400), seed=6).image
    levels = [img]
    while max(levels[-1].shape[:2]) > 128:  # (H, W, 3) -> channels first for the mean
        levels.append(mean_downsample2(levels[-1].transpose(2, 0, 1)).transpose(1, 2, 0))
    det = TissueDetector.from_levels(levels)
    assert det.low_res is not None and det.low_res.shape == levels[1].shape[:2]  # the finest small level
    grid = chunk_grid(img.shape[:2], 256, 32)
    assert [c.index[1] for c in grid if det.is_glass(c)] == [2, 3] * 3  # x >= 512: glass
    assert not TissueDetector.from_levels([img]).is_glass(grid[-1])  # no pyramid: no pre-pass

    reads = []
    real = engine._read_window
    monkeypatch.setattr(engine, "_read_window", lambda r, c, s: reads.append(c.index) or real(r, c, s))
    cfg = _cfg(tile=256, halo=32, tissue_detection=True)
    events = []
    pyr = run_to_end(segment(levels, model, tmp_path / "pyr", cfg), events.append)
    assert sorted(reads) == sorted(c.index for c in grid if c.index[1] < 2)
    # the glass costs no time: it does not count in the rate or the time left
    assert events[0].done == events[0].skipped == 6 and events[0].estimating and events[0].mpx_per_s == 0
    computed_px = 6 * 256 * 256
    assert all(e.mpx_per_s <= computed_px / e.elapsed / 1e6 + 1e-9 for e in events[1:])
    assert not any(e.estimating for e in events[1:])
    reads.clear()
    flat = run_to_end(segment(img, model, tmp_path / "flat", cfg))
    assert len(reads) == len(grid)  # without a pyramid every window is read
    assert pyr.skipped == flat.skipped == 6 and pyr.tiles == flat.tiles == 12
    assert np.array_equal(_labels(pyr.path), _labels(flat.path))


def test_partly_covered_chunks_compute_only_their_tissue(model, tmp_path):
    from napari_dfa.infer.tiling import chunk_grid
    from napari_dfa.infer.tissue import TissueDetector

    img = np.full((512, 512, 3), 245, np.uint8)  # glass, with tissue in the left 160 px only
    img[:, :160] = generate_tissue((512, 160), seed=2).image
    (chunk,) = chunk_grid(img.shape[:2], 512, 64)
    sub, win = TissueDetector().crop(chunk, img, 64)
    assert (sub.x0, sub.x1, sub.wx0, sub.wx1) == (0, 160, 0, 224) and win.shape == (512, 224, 3)
    assert sub.index == chunk.index and TissueDetector().crop(chunk, np.full_like(img, 245), 64) is None
    # a chunk whose tissue lies only in its halo (the neighbour's pixels) is background
    half = np.full((256, 512, 3), 245, np.uint8)
    half[:, :256] = generate_tissue((256, 256), seed=3).image
    left, right = chunk_grid(half.shape[:2], 256, 64)
    assert right.x0 == 256 and right.wx0 < 256 and TissueDetector().fraction(half[:, right.wx0 :]) > 0.1
    assert TissueDetector().crop(left, half[:, : left.wx1], 64) is not None
    assert TissueDetector().crop(right, half[:, right.wx0 :], 64) is None
    on = run_to_end(segment(img, model, tmp_path / "on", _cfg(tile=512, halo=64, tissue_detection=True)))
    off = run_to_end(segment(img, model, tmp_path / "off", _cfg(tile=512, halo=64)))
    lab_on, lab_off = _labels(on.path), _labels(off.path)
    assert on.skipped == 0 and (lab_on[:, 160:] == 0).all()
    # inside the tissue box the cropped window (with its halo) gives the full window's labels
    assert (lab_on[:, :160] == lab_off[:, :160]).mean() > 0.999


def test_uint16_and_float_inputs(model, image, tmp_path):
    ref = _labels(run_to_end(segment(image, model, tmp_path / "u8", _cfg())).path)
    u16 = image.astype(np.uint16) * 257
    f32 = image.astype(np.float32) / 255
    assert (_labels(run_to_end(segment(u16, model, tmp_path / "u16", _cfg())).path) == ref).mean() > 0.999
    assert (_labels(run_to_end(segment(f32, model, tmp_path / "f32", _cfg())).path) == ref).mean() > 0.999


@pytest.mark.slow
def test_distributed_equals_local(model, image, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = _labels(run_to_end(segment(image, model, tmp_path / "local", _cfg())).path)
    lazy = da.from_array(image, chunks=(128, 128, 3))
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc,
        distributed.Client(lc) as client,
    ):
        res = run_to_end(segment(lazy, model, tmp_path / "dist", _cfg(), client=client))
        pids = client.run(lambda: __import__("os").getpid())
    assert len(pids) == 2
    assert np.array_equal(_labels(res.path), local)


def test_a_batch_in_flight_holds_its_pixels_once(model, image, tmp_path, monkeypatch):
    """Once the predictor has copied a batch's windows into its input tensor nothing else
    keeps them (on a GPU a batch of four 2112^2 windows is 54 MB, held twice otherwise)."""
    import time
    import weakref

    from napari_dfa.infer import predictor

    real = predictor.Predictor.__call__
    alive = []

    def spy(self, chunks, windows):
        refs = [weakref.ref(w) for w in windows]
        out = real(self, chunks, windows)
        stop = time.monotonic() + 2.0
        while any(r() is not None for r in refs) and time.monotonic() < stop:
            time.sleep(0.01)  # the engine drops its references right after queueing the batch
        alive.append((len(refs), sum(r() is not None for r in refs)))
        return out

    monkeypatch.setattr(predictor.Predictor, "__call__", spy)
    res = run_to_end(segment(image, model, tmp_path / "o.zarr", _cfg(batch_size=2, streams=1)))
    assert sum(n for n, _ in alive) == res.tiles == 20 and max(n for n, _ in alive) == 2
    assert [k for _, k in alive] == [0] * len(alive)

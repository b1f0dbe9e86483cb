"""zarrs' Rust codec pipeline for the engine's zarr reads and writes: same data, config
left as found, opt-out honoured."""

import threading
import time

import numpy as np
import pytest
import zarr

from napari_dfa.infer.engine import EngineConfig, segment
from napari_dfa.io.codecs import PIPELINE, fast_codecs, zarrs_available
from napari_dfa.io.images import open_image
from napari_dfa.train import run_to_end

pytest.importorskip("zarrs")


def _pipeline(arr) -> str:
    return type(arr.async_array.codec_pipeline).__name__


def _default_path() -> str:
    return zarr.config.get("codec_pipeline.path")


@pytest.fixture
def rgb():
    rng = np.random.default_rng(3)
    img = (rng.random((300, 260, 3)) * 255).astype(np.uint8)
    img[:40] = 0  # a run of identical values, as glass is
    return img


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_inputs_read_through_zarrs_give_the_same_pixels(tmp_path, monkeypatch, rgb, fmt):
    path = tmp_path / f"slide_v{fmt}.zarr"
    zarr.create_array(str(path), data=rgb, chunks=(64, 96, 3), zarr_format=fmt)
    fast = open_image(path)
    assert _pipeline(fast.reader(0)) == "ZarrsCodecPipeline"
    monkeypatch.setenv("NAPARI_DFA_ZARRS", "0")
    assert not zarrs_available()
    plain = open_image(path)
    assert _pipeline(plain.reader(0)) == "BatchedCodecPipeline"
    np.testing.assert_array_equal(np.asarray(fast.reader(0)[:]), rgb)
    window = (slice(37, 251), slice(5, 259))  # across chunk edges, to the image edge
    np.testing.assert_array_equal(np.asarray(fast.reader(0)[window]), np.asarray(plain.reader(0)[window]))
    np.testing.assert_array_equal(fast.levels[0].compute(), rgb)


def test_config_is_restored_after_concurrent_blocks():
    before = _default_path()
    assert before != PIPELINE
    seen = []

    def work():
        for _ in range(20):
            with fast_codecs():
                seen.append(zarr.config.get("codec_pipeline.path"))
                time.sleep(0.0005)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == {PIPELINE}
    assert _default_path() == before


def test_engine_output_is_the_same_with_and_without_zarrs(tmp_path, monkeypatch, tiny_config):
    import torch

    from napari_dfa.model import DFASegmenter

    torch.manual_seed(0)
    tiny_model = DFASegmenter(tiny_config).eval()
    rng = np.random.default_rng(0)
    img = (rng.random((520, 700, 3)) * 255).astype(np.uint8)  # > 512: a label pyramid
    path = tmp_path / "in.zarr"
    zarr.create_array(str(path), data=img, chunks=(64, 64, 3))
    cfg = EngineConfig(tile=256, halo=32, device="cpu", tissue_detection=False, probabilities="uint8")
    fast = run_to_end(segment(open_image(path), tiny_model, tmp_path / "fast.zarr", cfg))
    g = zarr.open_group(str(fast.path), mode="r")
    with fast_codecs():
        assert _pipeline(zarr.open_group(str(fast.path), mode="r")["labels/0"]) == "ZarrsCodecPipeline"
    monkeypatch.setenv("NAPARI_DFA_ZARRS", "0")
    plain = run_to_end(segment(open_image(path), tiny_model, tmp_path / "plain.zarr", cfg))
    h = zarr.open_group(str(plain.path), mode="r")
    for name in ("labels/0", "labels/1", "probabilities/0"):
        np.testing.assert_array_equal(g[name][:], h[name][:])
    assert g["labels/0"][:].any()

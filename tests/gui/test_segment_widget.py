"""The Segment widget: labels (+ probabilities) aligned with the image, pyramid levels,
output folders, cancel, errors."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import snapshot, wait_idle

pytestmark = pytest.mark.needs_gl


def _small(seg, tile=256):
    seg.tile.value = tile
    seg.halo.value = 32


def test_segment_sample_with_probabilities(sample_viewer, with_model, dock, qtbot, tmp_path):
    seg = dock("Segment")
    _small(seg)
    seg.probabilities.value = "uint8"
    seg.output.value = tmp_path
    user = [snapshot(lay) for lay in sample_viewer.layers]
    seg.start_button.native.click()
    wait_idle(qtbot, seg)
    lab = sample_viewer.layers["tissue DFA segmentation"]
    assert lab.__class__.__name__ == "Labels" and lab.multiscale
    assert lab.data[0].shape == (768, 768) and lab.data[0].dtype == np.uint8
    np.testing.assert_allclose(lab.scale, (1, 1))
    np.testing.assert_allclose(lab.translate, (0, 0))
    cfg = with_model.model.config
    assert list(lab.features["class"][1:]) == list(cfg.class_names)
    for value, color in zip(cfg.label_values, cfg.class_colors, strict=False):
        rgba = lab.colormap.map(np.array([value]))[0]
        assert np.allclose(rgba[:3], [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)], atol=1e-2)
    values = set(np.unique(np.asarray(lab.data[0])))
    assert values <= set(cfg.label_values) and len(values) >= 3
    probs = [lay for lay in sample_viewer.layers if lay.name.startswith("tissue P(")]
    assert [p.name for p in probs] == [f"tissue P({n})" for n in cfg.class_names]
    assert all(np.asarray(p.data[0]).dtype == np.uint8 for p in probs)
    assert (tmp_path / "tissue_level0_dfa.zarr" / "zarr.json").is_file()
    assert "device: cpu" in seg.status.value or "on cpu" in seg.status.value
    assert [snapshot(sample_viewer.layers[s[0]]) for s in user] == user


def test_segment_pyramid_level_is_aligned(viewer, with_model, dock, qtbot):
    from napari_dfa.sample import load_sample

    img = np.tile(load_sample().image[:512, :512], (2, 2, 1))  # 1024 px
    levels = [img, img[::2, ::2], img[::4, ::4]]
    viewer.add_image(levels, name="pyramid", rgb=True, multiscale=True, scale=(0.5, 0.5), translate=(10, 20))
    seg = dock("Segment")
    seg.image.value = viewer.layers["pyramid"]
    assert seg.level.max == 2
    seg.level.value = 1
    assert "512 x 512" in seg.level_info.value
    _small(seg)
    seg.start_button.native.click()
    wait_idle(qtbot, seg)
    lab = viewer.layers["pyramid DFA segmentation (level 1)"]
    shape = lab.data[0].shape if lab.multiscale else lab.data.shape
    assert shape == (512, 512)
    np.testing.assert_allclose(lab.scale, (1.0, 1.0))  # 0.5 x downsample 2
    np.testing.assert_allclose(lab.translate, (10.25, 20.25))  # + half a level-1 pixel - half a level-0 pixel
    # the labels cover the image's world extent
    np.testing.assert_allclose(
        lab.extent.world[1] + 0.5 * lab.scale,
        viewer.layers["pyramid"].extent.world[1] + 0.5 * viewer.layers["pyramid"].scale,
    )
    # no output folder: a temporary store, deleted once its layer is removed
    from pathlib import Path

    tmp = Path(lab.metadata["napari_dfa_temp_dir"])
    assert (tmp / "segmentation.zarr" / "zarr.json").is_file()
    viewer.layers.remove(lab)
    assert not tmp.exists()


def test_cancel_during_segmentation(viewer, with_model, dock, qtbot):
    import dask.array as da

    from napari_dfa.sample import load_sample

    tile = da.from_array(load_sample().image, chunks=(768, 768, 3))
    big = da.concatenate([da.concatenate([tile] * 8, axis=1)] * 8, axis=0)  # 6144 px, lazy: 576 tiles
    viewer.add_image(big, name="big", rgb=True)
    seg = dock("Segment")
    seg.image.value = viewer.layers["big"]
    _small(seg)
    seg.start_button.native.click()
    qtbot.waitUntil(lambda: seg.progress.value > 0, timeout=60_000)
    seg.cancel_button.native.click()
    assert "cancelled" in seg.status.value  # the GUI says so at once
    # the job stops after its current tile batch (the whole image would take minutes; the
    # time it takes to stop is measured by benchmarks/gui_latency.py)
    wait_idle(qtbot, seg, timeout=20_000)
    assert [lay.name for lay in viewer.layers] == ["big"]
    assert seg.progress.value < 1000 and seg.start_button.enabled


def test_segment_errors(sample_viewer, with_model, dock, notes):
    import torch

    seg = dock("Segment")
    sample_viewer.add_image(np.zeros((64, 64), np.uint8), name="gray")
    seg.image.value = sample_viewer.layers["gray"]
    seg.start_button.native.click()
    assert "is not RGB" in notes("error")[-1]
    seg.image.value = sample_viewer.layers["tissue"]
    seg.tile.value = 136  # not a multiple of 32
    seg.start_button.native.click()
    assert "multiples of 32" in notes("error")[-1]
    seg.tile.value = 256
    if not torch.cuda.is_available():
        seg.device.value = "cuda"
        seg.start_button.native.click()
        assert "CUDA is not available" in notes("error")[-1]
    assert not seg.busy

"""The Fine-tune widget: class table and prior, training, live preview, cancel, errors."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import snapshot, tiny, wait_idle

pytestmark = pytest.mark.needs_gl


def _state_dict(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_class_table_shows_counts_and_prior(sample_viewer, with_model, dock):
    from napari_dfa.model import frequency_prior

    ft = dock("Fine-tune")
    scribbles = sample_viewer.layers["scribbles"].data
    counts = np.bincount(scribbles.ravel(), minlength=6)[1:]
    assert ft.table.names() == list(with_model.model.config.class_names)
    assert ft.table.colors() == list(with_model.model.config.class_colors)
    shown = [int(ft.table.item(r, 2).text().replace(",", "")) for r in range(5)]
    assert shown == counts.tolist()
    prior = [float(ft.table.item(r, 3).text()) for r in range(5)]
    np.testing.assert_allclose(prior, frequency_prior(counts), atol=1e-3)


def test_finetune_updates_model_with_preview_and_continues(sample_viewer, with_model, dock, qtbot):
    ft = dock("Fine-tune")
    user_layers = [snapshot(lay) for lay in sample_viewer.layers]
    start_model = with_model.model
    start_weights = _state_dict(start_model)
    tiny(ft, preview=True, preview_every=1)
    ft.table.edit(0, 0, "connective")  # a renamed class: adapted, not continued
    ft.start_button.native.click()
    assert not ft.start_button.enabled and ft.cancel_button.enabled
    # the preview layer is made with the click (empty), not mid-training
    assert not sample_viewer.layers["DFA live preview"].data.any()
    wait_idle(qtbot, ft)
    model = with_model.model
    assert model is not start_model and model.config.class_names[0] == "connective"
    assert "fine-tuned on 'scribbles'" in with_model.source
    assert model.training_summary["steps"] == 3
    assert ft.plot.steps == [1, 2, 3] and len(ft.plot.losses) == 3
    assert "device: cpu" in ft.status.value or "on cpu" in ft.status.value
    preview = sample_viewer.layers["DFA live preview"]
    assert preview.data.dtype == np.uint8 and set(np.unique(preview.data)) <= set(range(1, 6))
    for k, v in start_model.state_dict().items():  # the starting model is untouched
        assert np.array_equal(v.numpy(), start_weights[k].numpy())
    assert [snapshot(sample_viewer.layers[s[0]]) for s in user_layers] == user_layers

    first_source = with_model.source
    ft.start_button.native.click()  # "Fine-tune" again continues from the current model
    wait_idle(qtbot, ft)
    assert with_model.model is not model
    assert with_model.model.training_summary["started_from"] == first_source


def test_cancel_during_finetune_keeps_model(sample_viewer, with_model, dock, qtbot):
    ft = dock("Fine-tune")
    before = with_model.model
    tiny(ft, steps=10_000)
    ft.start_button.native.click()
    qtbot.waitUntil(lambda: len(ft.plot.steps) >= 1, timeout=60_000)
    ft.cancel_button.native.click()
    assert "cancelled" in ft.status.value  # the GUI says so at once
    # the job stops at its next step (10,000 steps would take an hour; the time it takes
    # to stop is measured by benchmarks/gui_latency.py)
    wait_idle(qtbot, ft, timeout=20_000)
    assert with_model.model is before and ft.start_button.enabled
    assert len(ft.plot.steps) < 10_000 and ft.progress.value < 1000


def test_error_notifications(sample_viewer, with_model, dock, notes):
    import torch

    ft = dock("Fine-tune")
    user = [snapshot(lay) for lay in sample_viewer.layers]
    empty = sample_viewer.add_labels(np.zeros((768, 768), np.uint8), name="empty")
    ft.annotations.value = empty
    ft.start_button.native.click()
    assert "has no annotations" in notes("error")[-1] and not ft.busy

    small = np.zeros((100, 100), np.uint8)
    small[10:20, 10:20] = 1
    ft.annotations.value = sample_viewer.add_labels(small, name="small")
    ft.start_button.native.click()
    assert "100 x 100 px but the image is 768 x 768" in notes("error")[-1]

    gray = sample_viewer.add_image(np.zeros((768, 768), np.uint8), name="gray")
    ft.image.value = gray
    ft.annotations.value = sample_viewer.layers["scribbles"]
    ft.start_button.native.click()
    assert "is not RGB" in notes("error")[-1]

    ft.image.value = sample_viewer.layers["tissue"]
    ft.table.edit(1, 1, "purple")
    ft.start_button.native.click()
    assert "is not a #rrggbb colour" in notes("error")[-1]
    ft.table.edit(1, 1, "#7b3fb5")

    if not torch.cuda.is_available():
        ft.device.value = "cuda"
        ft.start_button.native.click()
        assert "CUDA is not available" in notes("error")[-1]
    assert not ft.busy
    assert [snapshot(sample_viewer.layers[s[0]]) for s in user] == user


def test_no_annotation_layer_is_an_error(viewer, dock, notes):
    from napari_dfa.sample import load_sample

    viewer.add_image(load_sample().image, name="tissue", rgb=True)
    ft = dock("Fine-tune")
    ft.start_button.native.click()
    assert "there is no annotation layer" in notes("error")[-1]


def test_shapes_annotations_with_class_feature(sample_viewer, with_model, dock, qtbot, notes):
    ft = dock("Fine-tune")
    rects = [
        np.array([[100, 100], [100, 160], [160, 160], [160, 100]]),
        np.array([[400, 400], [400, 470], [470, 470], [470, 400]]),
    ]
    shapes = sample_viewer.add_shapes(rects, shape_type="rectangle", name="boxes")
    ft.annotations.value = shapes
    ft.refresh(notify=True)
    assert "no 'class' feature" in notes("error")[-1]
    shapes.features = {"class": ["tumor", "stroma"]}
    ft.refresh()
    counts = [int(ft.table.item(r, 2).text().replace(",", "")) for r in range(5)]
    assert counts[0] == 71 * 71 and counts[1] == 61 * 61 and sum(counts[2:]) == 0
    tiny(ft, steps=2)
    ft.start_button.native.click()
    wait_idle(qtbot, ft)
    assert "fine-tuned on 'boxes'" in with_model.source
    assert len(shapes.data) == 2  # the user's shapes are untouched


def test_finetune_reads_only_crops_of_a_multiscale_image(viewer, with_model, dock, qtbot):
    from napari_dfa.data.synthetic import lazy_slide

    image, _ = lazy_slide((4096, 4096), chunk=512, seed=3)
    levels = [image, image[::2, ::2], image[::4, ::4]]
    viewer.add_image(levels, name="slide", rgb=True, multiscale=True)
    strokes = np.zeros((4096, 4096), np.uint8)
    strokes[2000:2200:8, 3000:3200] = 1  # stripes of class 1 in a 200 px box
    strokes[300:340, 500:540] = 2  # a blob of class 2 far away
    viewer.add_labels(strokes, name="strokes")
    ft = dock("Fine-tune")
    ft.image.value = viewer.layers["slide"]
    ft.annotations.value = viewer.layers["strokes"]
    tiny(ft, steps=2)
    ft.start_button.native.click()
    wait_idle(qtbot, ft)
    regions = with_model.model.training_summary["regions"]
    assert regions == [[300 - 64, 500 - 64, 340 + 64, 540 + 64], [2000 - 64, 3000 - 64, 2193 + 64, 3200 + 64]]

"""The whole loop through the docked widgets: open the sample, fine-tune with a tiny
budget, segment, inspect; then the multiscale slide sample."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import tiny, wait_idle

pytestmark = pytest.mark.needs_gl


def test_sample_finetune_segment_inspect(viewer, dock, qtbot, notes):
    from napari_dfa._widgets.state import model_state

    viewer.open_sample("napari-dfa", "tissue")
    model_w, ft, seg, diff = (dock(n) for n in ("Model", "Fine-tune", "Segment", "Class difficulty"))
    assert ft.image.value.name == "tissue" and ft.annotations.value.name == "scribbles"
    tiny(ft)
    ft.start_button.native.click()  # no model yet: starts from the shipped default model
    wait_idle(qtbot, ft)
    state = model_state(viewer)
    assert "fine-tuned on 'scribbles'" in state.source and "fine-tuned" in model_w.info.value
    assert state.model.training_summary["started_from"] == "shipped default model"

    seg.tile.value = 384
    seg.start_button.native.click()
    wait_idle(qtbot, seg)
    lab = viewer.layers["tissue DFA segmentation"]
    assert lab.data[0].shape == (768, 768) and lab.data[0].dtype == np.uint8

    diff.max_side.value = 256
    diff.show_attention()
    qtbot.waitUntil(lambda: not diff.busy, timeout=60_000)
    diff.show_difficulty()
    qtbot.waitUntil(lambda: not diff.busy, timeout=60_000)
    names = state.model.config.class_names
    assert all(f"attention: {n}" in viewer.layers for n in names)
    assert "difficulty (entropy)" in viewer.layers
    assert diff.table.rowCount() == len(names)
    assert not notes("error")


def test_slide_sample_opens_as_multiscale(viewer):
    viewer.open_sample("napari-dfa", "slide")
    slide = viewer.layers["slide"]
    assert slide.multiscale and slide.rgb
    assert [lv.shape[:2] for lv in slide.data] == [(8192 // 2**k,) * 2 for k in range(5)]
    assert type(slide.data[0]).__module__.startswith("dask")
    scribbles = viewer.layers["slide scribbles"].data
    assert scribbles.shape == (8192, 8192) and scribbles[:3000].max() == 0 and scribbles.max() == 5
    assert viewer.layers["slide ground truth"].multiscale

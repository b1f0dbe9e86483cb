"""The Model widget: default model, load/save folders, classes shown, shared per-viewer state."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.needs_gl


def test_default_model_loads_and_is_shared(viewer, dock, qtbot):
    from napari_dfa._widgets.state import model_state

    w = dock("Model")
    difficulty = dock("Class difficulty")
    assert "No model yet" in w.info.value
    w.default_button.native.click()
    qtbot.waitUntil(lambda: model_state(viewer).has_model, timeout=30_000)
    qtbot.waitUntil(lambda: w.default_button.enabled, timeout=5_000)
    names = model_state(viewer).model.config.class_names
    assert "shipped default model" in w.info.value
    for name, color in zip(names, model_state(viewer).model.config.class_colors, strict=False):
        assert name in w.info.value and color in w.info.value
    assert difficulty.table.rowCount() == len(names)  # the other widgets see the same model


def test_save_then_load_folder(viewer, dock, qtbot, with_model, tmp_path, notes):
    w = dock("Model")
    folder = tmp_path / "my model"
    w.save_folder.value = folder
    w.save_button.native.click()
    qtbot.waitUntil(lambda: (folder / "config.json").is_file() and w.save_button.enabled, timeout=30_000)
    assert any("saved" in m for m in notes("info"))
    w.load_folder.value = folder
    w.load_button.native.click()
    qtbot.waitUntil(lambda: str(folder) in with_model.source and w.load_button.enabled, timeout=30_000)
    assert with_model.model.folder == str(folder)
    assert str(folder) in w.info.value


def test_load_and_save_errors_are_notifications(viewer, dock, qtbot, with_model, tmp_path, notes):
    before = with_model.model
    w = dock("Model")
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"\x80\x04junk")
    w.load_folder.value = pickle
    w.load_button.native.click()
    qtbot.waitUntil(lambda: bool(notes("error")), timeout=30_000)
    assert "never unpickles" in notes("error")[-1]
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"x")
    w.save_folder.value = other
    w.save_button.native.click()
    qtbot.waitUntil(lambda: len(notes("error")) >= 2, timeout=30_000)
    assert "choose a new folder name" in notes("error")[-1]
    assert (other / "cat.jpg").read_bytes() == b"x"
    assert with_model.model is before


def test_state_is_one_per_viewer(make_napari_viewer_proxy):
    from napari_dfa._widgets.state import model_state

    v1, v2 = make_napari_viewer_proxy(), make_napari_viewer_proxy()
    assert model_state(v1) is model_state(v1)
    assert model_state(v1) is not model_state(v2)

"""The Class difficulty widget: bias chart/table, attention maps and difficulty maps as layers."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.needs_gl


def _wait(qtbot, w):
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)


def test_bias_table_follows_the_model(sample_viewer, with_model, dock):
    from napari_dfa.inspect import bias_table
    from napari_dfa.model.adapt import adapt_model

    w = dock("Class difficulty")
    rows = bias_table(with_model.model)
    assert w.table.rowCount() == len(rows)
    assert [w.table.item(i, 0).text() for i in range(len(rows))] == [r.name for r in rows]
    assert float(w.table.item(0, 4).text()) == pytest.approx(rows[0].learned, abs=0.01)
    assert len(w.chart.ax.patches) == 2 * len(rows)  # prior and learned bars
    three = adapt_model(with_model.model, ["a", "b", "c"], [0.6, 0.3, 0.1])
    with_model.set_model(three, "test")
    assert w.table.rowCount() == 3 and len(w.chart.ax.patches) == 6


def test_attention_maps_of_the_view(sample_viewer, with_model, dock, qtbot):
    w = dock("Class difficulty")
    sample_viewer.layers["tissue"].scale = (0.5, 0.5)
    sample_viewer.layers["tissue"].translate = (100, 200)
    sample_viewer.reset_view()
    w.max_side.value = 256
    w.show_attention()
    _wait(qtbot, w)
    names = with_model.model.config.class_names
    maps = [sample_viewer.layers[f"attention: {n}"] for n in names]
    stride = int(w.status.value.split("stride ")[1].split(" ")[0])
    assert stride in (8, 16, 32)
    for lay in maps:
        assert lay.data.dtype == np.float32 and lay.data.shape == (256 // stride, 256 // stride)
        np.testing.assert_allclose(lay.scale, (0.5 * stride, 0.5 * stride))
    # the view's centre 256 px of the 768 px image: origin 256, half a map pixel inwards
    np.testing.assert_allclose(
        maps[0].translate, (100 + 0.5 * (256 + (stride - 1) / 2), 200 + 0.5 * (256 + (stride - 1) / 2))
    )
    # a second call updates our layers instead of adding more
    n_layers = len(sample_viewer.layers)
    w.head.value = "0"
    w.layer.value = 0
    w.show_attention()
    _wait(qtbot, w)
    assert len(sample_viewer.layers) == n_layers
    assert "decoder layer 0, head 0" in w.status.value


def test_difficulty_map_of_a_shapes_region(sample_viewer, with_model, dock, qtbot):
    w = dock("Class difficulty")
    sample_viewer.add_shapes(
        [np.array([[100, 200], [100, 300], [180, 300], [180, 200]])], shape_type="rectangle", name="roi"
    )
    w.reset_choices()
    w.region.value = sample_viewer.layers["roi"]
    for kind in ("entropy", "margin", "bias"):
        w.kind.value = kind
        w.show_difficulty()
        _wait(qtbot, w)
        lay = sample_viewer.layers[f"difficulty ({kind})"]
        assert lay.data.shape == (81, 101) and lay.data.dtype == np.float32
        np.testing.assert_allclose(lay.translate, (100, 200))
    ent = sample_viewer.layers["difficulty (entropy)"].data
    assert ent.min() >= 0 and ent.max() <= 1


def test_no_model_is_an_error(sample_viewer, dock, notes):
    w = dock("Class difficulty")
    assert w.table.rowCount() == 0
    w.attention_button.native.click()
    assert "there is no current model" in notes("error")[-1]

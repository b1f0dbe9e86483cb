import math

import numpy as np
import pytest
import torch

from napari_dfa.data.synthetic import generate_tissue
from napari_dfa.inspect import attention_maps, bias_table, difficulty_map
from napari_dfa.model import DFASegmenter


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    m = DFASegmenter(tiny_config).eval()
    with torch.no_grad():
        m.focal_bias.bias.add_(torch.tensor([0.5, 0.0, -0.2]))
    return m


def test_bias_table(model):
    rows = bias_table(model)
    assert [r.name for r in rows] == ["a", "b", "c"]
    assert rows[2].prior < rows[0].prior and rows[2].neg_log_prior == pytest.approx(-math.log(rows[2].prior))
    assert [round(r.drift, 5) for r in rows] == [0.5, 0.0, -0.2]
    assert sum(r.relative_drift for r in rows) == pytest.approx(0.0, abs=1e-6)
    assert rows[0].init > rows[0].learned - 1  # init is the prior-based value
    assert rows[2].init > rows[0].init  # neg_log_freq: rarer class starts higher


@pytest.mark.parametrize("layer, stride", [(0, 32), (1, 16), (-1, 8)])
def test_attention_maps_shape_and_placement(model, layer, stride):
    img = generate_tissue((100, 140), seed=1).image
    am = attention_maps(model, img, layer=layer, origin=(10.0, 20.0), pixel_scale=2.0)
    assert am.stride == stride and am.maps.shape == (3, math.ceil(100 / stride), math.ceil(140 / stride))
    assert am.scale == (2.0 * stride, 2.0 * stride)
    assert am.translate[0] == pytest.approx(10.0 + (2.0 * stride - 2.0) / 2)
    assert np.isfinite(am.maps).all() and (am.maps >= 0).all() and am.maps.sum() > 0
    one_head = attention_maps(model, img, layer=layer, head=1)
    assert not np.allclose(one_head.maps, am.maps)
    with pytest.raises(ValueError):
        attention_maps(model, img, head=7)


@pytest.mark.parametrize("kind", ["entropy", "margin", "bias"])
def test_difficulty_maps(model, kind):
    img = generate_tissue((64, 80), seed=2).image
    d = difficulty_map(model, img, kind)
    assert d.shape == (64, 80) and d.dtype == np.float32 and np.isfinite(d).all()
    if kind != "bias":
        assert d.min() >= -1e-6 and d.max() <= 1 + 1e-6
    else:
        rel = np.array([r.relative_drift for r in bias_table(model)])
        assert np.abs(np.unique(d)[:, None] - rel[None]).min(1).max() < 1e-5

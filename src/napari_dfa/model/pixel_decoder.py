"""FPN pixel decoder: per-pixel embeddings at stride 4 and a multi-scale memory.

Follows Mask2Former's ``BasePixelDecoder``: lateral 1x1 convolutions, a top-down path
with nearest upsampling and 3x3 output convolutions. The memory handed to the
transformer decoder is the FPN output at strides 32, 16 and 8 (coarse to fine).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_dfa.model.backbone import ConvBNAct

__all__ = ["FPNPixelDecoder"]


class FPNPixelDecoder(nn.Module):
    def __init__(self, in_channels: list[int], dim: int, mask_dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvBNAct(c, dim, k=1) for c in in_channels)
        # no output convolution at stride 4: the mask-feature convolution plays that role
        self.output = nn.ModuleList(ConvBNAct(dim, dim) for _ in in_channels[1:])
        self.mask_features = nn.Sequential(ConvBNAct(dim, mask_dim), nn.Conv2d(mask_dim, mask_dim, 1))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(mask_features at stride 4, [memory at strides 32, 16, 8])``."""
        y = self.output[-1](self.lateral[-1](feats[-1]))
        outs = [y]
        for i in range(len(feats) - 2, -1, -1):
            lat = self.lateral[i](feats[i])
            y = lat + F.interpolate(y, size=lat.shape[-2:], mode="nearest")
            if i > 0:
                y = self.output[i - 1](y)
            outs.append(y)
        # outs: strides 32, 16, 8, 4
        return self.mask_features(outs[-1]), outs[:3]

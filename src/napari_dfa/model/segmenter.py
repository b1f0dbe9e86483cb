"""The DFA segmenter: backbone -> FPN pixel decoder -> DFA transformer decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from napari_dfa.model.backbone import build_backbone
from napari_dfa.model.config import ModelConfig
from napari_dfa.model.decoder import DFADecoder
from napari_dfa.model.focal_bias import FocalBias
from napari_dfa.model.pixel_decoder import FPNPixelDecoder

__all__ = ["DIVISOR", "DFASegmenter", "SegmenterOutput", "upsample_region"]

DIVISOR = 32  # input sides must be multiples of this (the coarsest stride)


@dataclass
class SegmenterOutput:
    """Class logits at stride 4 (per decoder layer, or the final one only; last = final)
    and, on request, per-layer attention maps ``(B, heads, K, h_l, w_l)``."""

    layer_logits: list[torch.Tensor]
    attention: list[torch.Tensor] = field(default_factory=list)

    @property
    def logits(self) -> torch.Tensor:
        return self.layer_logits[-1]


class DFASegmenter(nn.Module):
    """Mask2Former-style semantic segmenter with one query per class and the DFA bias.

    ``forward`` takes RGB in ``[0, 1]`` shaped ``(B, 3, H, W)`` with ``H`` and ``W``
    multiples of 32, normalises it with the model's own mean/std, and returns logits at
    stride 4. :meth:`predict_logits` handles any size and returns full-resolution logits.
    """

    def __init__(self, config: ModelConfig, backbone_weights: str | None = None) -> None:
        super().__init__()
        self.config = config
        self._encoder_frozen = False
        self.backbone = build_backbone(
            config.backbone, config.backbone_channels, config.backbone_blocks, backbone_weights
        )
        self.pixel_decoder = FPNPixelDecoder(self.backbone.out_channels, config.hidden_dim, config.mask_dim)
        focal_bias = FocalBias(
            config.prior, config.bias_placement, config.bias_init, config.bias_learnable, config.bias_tau
        )
        self.decoder = DFADecoder(
            num_classes=config.num_classes,
            dim=config.hidden_dim,
            mask_dim=config.mask_dim,
            heads=config.num_heads,
            layers=config.dec_layers,
            ffn_dim=config.ffn_dim,
            window_cells=config.window_cells,
            mask_threshold=config.mask_threshold,
            focal_bias=focal_bias,
        )
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    @property
    def encoder_frozen(self) -> bool:
        """Whether the backbone is frozen (see :meth:`freeze_encoder`)."""
        return self._encoder_frozen

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) the backbone: no gradients, and its batch-norm statistics
        stay as they are (the backbone stays in eval mode while the model trains)."""
        self._encoder_frozen = frozen
        self.backbone.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> DFASegmenter:
        super().train(mode)
        if self._encoder_frozen:
            self.backbone.eval()
        return self

    @property
    def focal_bias(self) -> FocalBias:
        """The DFA bias module (owned by the decoder)."""
        return self.decoder.focal_bias

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(
        self,
        x: torch.Tensor,
        return_attn: bool = False,
        all_layers: bool | None = None,
        points: torch.Tensor | None = None,
    ) -> SegmenterOutput:
        """Logits at stride 4: of every decoder layer when ``all_layers`` (default: in
        training mode, for deep supervision), else of the final layer only.

        With ``points`` (``(B, P, 2)``, x/y in ``[-1, 1]``), every layer's logits at
        those points, ``(B, K, P)``, for the point-sampled training loss."""
        if x.shape[-1] % DIVISOR or x.shape[-2] % DIVISOR:
            raise ValueError(f"input sides must be multiples of {DIVISOR}, got {tuple(x.shape[-2:])}")
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self._encoder_frozen:
            with torch.no_grad():
                feats = self.backbone(x)
        else:
            feats = self.backbone(x)
        mask_features, memory = self.pixel_decoder(feats)
        logits, attn = self.decoder(
            memory, mask_features, return_attn=return_attn, all_layers=all_layers, points=points
        )
        return SegmenterOutput(logits, attn)

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final-layer logits ``(B, K, H, W)`` at input resolution, for any ``H, W``."""
        h, w = x.shape[-2:]
        return upsample_region(self.predict_coarse(x), (0, h, 0, w))

    def predict_coarse(self, x: torch.Tensor) -> torch.Tensor:
        """Final-layer logits at stride 4 of ``x`` padded to a multiple of 32; turn any
        region of them into input-resolution logits with :func:`upsample_region`."""
        return self.forward(pad_to_multiple(x, DIVISOR)).logits.contiguous()  # NCHW: fast upsampling


STRIDE = 4  # the logits' stride


def upsample_region(coarse: torch.Tensor, region: tuple[int, int, int, int]) -> torch.Tensor:
    """Rows ``y0:y1`` and columns ``x0:x1`` of the bilinear upsampling (x4, ``align_corners
    =False``) of stride-4 logits ``coarse``, computed from a crop of ``coarse`` with one
    cell of margin: the same values as upsampling everything and cropping, for a fraction
    of the work and memory (the engine keeps only each window's core)."""
    y0, y1, x0, x1 = region
    h4, w4 = coarse.shape[-2:]
    if not (0 <= y0 < y1 <= h4 * STRIDE and 0 <= x0 < x1 <= w4 * STRIDE):
        raise ValueError(f"region {region} is outside the upsampled logits {(h4 * STRIDE, w4 * STRIDE)}")
    a, b = max(y0 // STRIDE - 1, 0), min(-(-y1 // STRIDE) + 1, h4)
    c, d = max(x0 // STRIDE - 1, 0), min(-(-x1 // STRIDE) + 1, w4)
    crop = coarse[..., a:b, c:d]
    up = F.interpolate(crop, size=((b - a) * STRIDE, (d - c) * STRIDE), mode="bilinear", align_corners=False)
    return up[..., y0 - a * STRIDE : y1 - a * STRIDE, x0 - c * STRIDE : x1 - c * STRIDE]


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """Pad the last two dims at the bottom/right to multiples of ``m`` (reflect if possible)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)

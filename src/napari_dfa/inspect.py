"""Inspection: the learned per-class bias, cross-attention maps, and difficulty maps.

All functions are Qt-free; the Class difficulty widget and the CLI call them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AttentionMaps", "BiasRow", "attention_maps", "bias_table", "difficulty_map"]


@dataclass(frozen=True)
class BiasRow:
    """One class of the bias readout."""

    name: str
    color: str
    prior: float  # frequency prior pi (from the annotations the bias was initialised with)
    neg_log_prior: float  # -log pi
    init: float  # bias at initialisation (centred -tau log pi, +tau log pi or 0)
    learned: float  # bias now
    drift: float  # learned - init
    relative_drift: float  # drift - mean drift: > 0 the class got more focus than the others


def bias_table(model) -> list[BiasRow]:
    """The learned DFA bias of every class next to its log-frequency prior."""
    fb = model.focal_bias
    prior = fb.prior.detach().cpu().tolist()
    b0 = fb.bias_init.detach().cpu().tolist()
    b = fb.bias.detach().cpu().tolist()
    drift = [x - y for x, y in zip(b, b0)]
    mean_drift = sum(drift) / len(drift)
    cfg = model.config
    return [
        BiasRow(n, c, p, -math.log(p), i0, bb, d, d - mean_drift)
        for n, c, p, i0, bb, d in zip(cfg.class_names, cfg.class_colors, prior, b0, b, drift)
    ]


@dataclass
class AttentionMaps:
    """Cross-attention maps of one decoder layer over an image region.

    ``maps[k]`` is the attention mass the class-``k`` query puts on each key (summed over
    the query cells that see it), averaged over heads or of one head, at the layer's
    memory resolution; ``scale`` (px per map pixel) and ``translate`` (region origin,
    plus half a map pixel so map pixels sit over the image pixels they summarise) place
    it over the image in napari.
    """

    maps: np.ndarray  # (K, h, w) float32
    layer: int
    stride: int
    head: int | None
    scale: tuple[float, float]
    translate: tuple[float, float]
    class_names: list[str]


def _to_tensor(model, region: np.ndarray):
    import torch

    from napari_dfa.data.images import to_rgb_uint8
    from napari_dfa.model.segmenter import pad_to_multiple

    rgb = to_rgb_uint8(region)
    dev = next(model.parameters()).device
    x = torch.from_numpy(rgb).to(dev).permute(2, 0, 1)[None].float().div_(255.0)
    return pad_to_multiple(x, 32), rgb.shape[:2]


def attention_maps(
    model,
    region: np.ndarray,
    layer: int = -1,
    head: int | None = None,
    origin: tuple[float, float] = (0.0, 0.0),
    pixel_scale: float = 1.0,
) -> AttentionMaps:
    """Per-class cross-attention maps of decoder ``layer`` for an RGB image ``region``.

    Args:
        model: a DFA segmenter.
        region: ``(H, W, 3)`` image region (e.g. the current view).
        layer: decoder layer (negative counts from the last).
        head: one attention head, or ``None`` for the mean over heads.
        origin: the region's top-left corner in layer (world) coordinates.
        pixel_scale: size of one region pixel in world units (pyramid level scale).
    """
    import torch

    from napari_dfa.model.decoder import LEVEL_STRIDES

    x, (h, w) = _to_tensor(model, region)
    n_layers = model.config.dec_layers
    if n_layers == 0:
        raise ValueError("this model has no decoder layers, hence no cross-attention maps")
    li = layer % n_layers
    with torch.inference_mode():
        out = model(x, return_attn=True)
    att = out.attention[li][0]  # (heads, K, h_l, w_l)
    if head is None:
        att = att.mean(0)
    else:
        if not 0 <= head < att.shape[0]:
            raise ValueError(f"head must be in 0..{att.shape[0] - 1}")
        att = att[head]
    stride = LEVEL_STRIDES[li % len(LEVEL_STRIDES)]
    hl, wl = math.ceil(h / stride), math.ceil(w / stride)
    maps = att[:, :hl, :wl].float().cpu().numpy()
    s = stride * pixel_scale
    translate = (origin[0] + (s - pixel_scale) / 2, origin[1] + (s - pixel_scale) / 2)
    return AttentionMaps(maps, li, stride, head, (s, s), translate, list(model.config.class_names))


def difficulty_map(model, region: np.ndarray, kind: str = "entropy") -> np.ndarray:
    """A per-pixel "where does the model struggle" map, ``(H, W)`` float32.

    ``kind``:
        * ``entropy`` — normalised entropy of the class probabilities (0 = certain, 1 =
          uniform): the model's uncertainty;
        * ``margin`` — 1 - (p_top1 - p_top2): close to 1 where two classes compete;
        * ``bias`` — the relative learned bias drift of the predicted class: where the
          model predicts classes it learned to find hard.
    """
    import torch

    x, (h, w) = _to_tensor(model, region)
    with torch.inference_mode():
        logits = model.predict_logits(x)[0, :, :h, :w].float()
    p = logits.softmax(0)
    k = p.shape[0]
    if kind == "entropy":
        ent = -(p * p.clamp_min(1e-12).log()).sum(0)
        out = ent / math.log(k) if k > 1 else ent * 0
    elif kind == "margin":
        top = p.topk(min(2, k), dim=0).values
        out = 1.0 - (top[0] - top[1]) if k > 1 else top[0] * 0
    elif kind == "bias":
        rel = torch.tensor([r.relative_drift for r in bias_table(model)], device=p.device)
        out = rel[p.argmax(0)]
    else:
        raise ValueError(f"unknown difficulty map {kind!r}; use entropy, margin or bias")
    return out.cpu().numpy().astype(np.float32)

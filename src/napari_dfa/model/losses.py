"""Segmentation losses on sparse annotations, with deep supervision.

Targets use the annotation convention: ``0`` = unlabeled (ignored), ``1..K`` = classes.
Only annotated pixels contribute. Every decoder layer's logits get the same loss
(deep supervision); the total is the mean over layers.

Options used by the baselines (``docs/benchmarks.md``): per-class weights (frequency
reweighting, CDB), focal modulation (``gamma``), and logit adjustment (``tau * log pi``
added to the logits during training, Menon et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "LossConfig",
    "annotated_loss",
    "dice_loss",
    "pixel_ce",
    "sample_points",
    "segmentation_loss",
]


@dataclass
class LossConfig:
    """Weights and options of :func:`segmentation_loss`.

    Attributes:
        ce_weight: Weight of the (focal) cross-entropy term.
        dice_weight: Weight of the soft Dice term.
        class_weights: Optional per-class weights (length K) for both terms.
        focal_gamma: Focal loss exponent; ``0`` is plain cross-entropy.
        logit_adjust: Optional per-class offsets added to the logits in training
            (logit adjustment: ``tau * log pi``).
    """

    ce_weight: float = 1.0
    dice_weight: float = 1.0
    class_weights: list[float] | None = None
    focal_gamma: float = 0.0
    logit_adjust: list[float] | None = None


def pixel_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    gamma: float = 0.0,
) -> torch.Tensor:
    """(Focal) cross-entropy over annotated pixels.

    Args:
        logits: ``(N, K)`` logits of the annotated pixels.
        target: ``(N,)`` class indices ``0..K-1``.
        weight: ``(K,)`` class weights; the mean is weighted like ``F.cross_entropy``.
        gamma: focal exponent; ``gamma == 0`` reproduces ``F.cross_entropy`` exactly.
    """
    logp = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
    loss = -logp
    if gamma:
        loss = loss * (1.0 - logp.exp()).clamp(min=0.0).pow(gamma)
    if weight is None:
        return loss.mean()
    w = weight[target]
    return (loss * w).sum() / w.sum().clamp(min=1e-12)


def dice_loss(
    probs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1.0
) -> torch.Tensor:
    """Soft Dice loss over annotated pixels, averaged over the classes present.

    Args:
        probs: ``(N, K)`` softmax probabilities of the annotated pixels.
        target: ``(N,)`` class indices.
        weight: ``(K,)`` optional class weights for the average.
    """
    k = probs.shape[1]
    onehot = F.one_hot(target, k).to(probs.dtype)
    inter = (probs * onehot).sum(0)
    denom = probs.sum(0) + onehot.sum(0)
    dice = (2 * inter + eps) / (denom + eps)
    present = onehot.sum(0) > 0
    w = present.to(probs.dtype) if weight is None else weight * present
    return ((1 - dice) * w).sum() / w.sum().clamp(min=1e-12)


def annotated_loss(logits: torch.Tensor, target: torch.Tensor, config: LossConfig | None = None) -> torch.Tensor:
    """``ce_weight * CE + dice_weight * Dice`` on annotated pixels.

    Args:
        logits: ``(N, K)`` logits of annotated pixels.
        target: ``(N,)`` class indices ``0..K-1``.
    """
    cfg = config or LossConfig()
    device = logits.device
    weight = None if cfg.class_weights is None else torch.tensor(cfg.class_weights, device=device)
    logits = logits.float()
    if cfg.logit_adjust is not None:
        logits = logits + torch.tensor(cfg.logit_adjust, device=device)
    total = logits.new_zeros(())
    if cfg.ce_weight:
        total = total + cfg.ce_weight * pixel_ce(logits, target, weight, cfg.focal_gamma)
    if cfg.dice_weight:
        total = total + cfg.dice_weight * dice_loss(logits.softmax(dim=1), target, weight)
    return total


def segmentation_loss(
    layer_logits: list[torch.Tensor], target: torch.Tensor, config: LossConfig | None = None
) -> torch.Tensor:
    """Mean over decoder layers of :func:`annotated_loss`.

    Args:
        layer_logits: per layer, either logit maps ``(B, K, h, w)`` (bilinearly resized
            to the target) with ``target`` ``(B, H, W)``, or point logits ``(B, K, P)``
            with ``target`` ``(B, P)`` (see :func:`sample_points`).
        target: integer labels, ``0`` = unlabeled, ``1..K`` classes.
        config: loss options.

    Returns:
        A scalar; zero (with a gradient path) when no pixel is annotated.
    """
    mask = target > 0
    if not bool(mask.any()):
        return sum(lg.sum() * 0.0 for lg in layer_logits)
    tgt = target[mask].long() - 1
    total = layer_logits[0].new_zeros((), dtype=torch.float32)
    for lg in layer_logits:
        if lg.ndim == 4 and lg.shape[-2:] != target.shape[-2:]:
            lg = F.interpolate(lg, size=target.shape[-2:], mode="bilinear", align_corners=False)
        sel = lg.movedim(1, -1)[mask]  # (N, K)
        total = total + annotated_loss(sel, tgt, config)
    return total / len(layer_logits)


def sample_points(
    target: torch.Tensor, num_points: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``num_points`` annotated pixels per image, for the point-sampled loss.

    Args:
        target: ``(B, H, W)`` labels (``0`` = unlabeled).

    Returns:
        ``points`` ``(B, P, 2)`` pixel-centre coordinates (x, y) in ``[-1, 1]`` and
        ``labels`` ``(B, P)``; images with fewer annotated pixels are padded with
        label 0 (ignored).
    """
    b, h, w = target.shape
    flat = target.reshape(b, -1)
    annotated = flat > 0
    p = int(min(num_points, int(annotated.sum(1).max().item()) or 1))
    # random scores, annotated pixels first: top-p picks a uniform random subset
    scores = torch.rand(flat.shape, generator=generator, device="cpu").to(flat.device) + annotated.float() * 2
    idx = scores.topk(p, dim=1).indices
    labels = flat.gather(1, idx) * annotated.gather(1, idx)
    ys = (idx // w).float()
    xs = (idx % w).float()
    points = torch.stack([(xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1], dim=-1)
    return points, labels

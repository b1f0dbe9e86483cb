"""Batched augmentation of training crops, on the training device.

The sampler cuts raw ``read_size`` windows; :func:`augment_batch` turns a batch of them
into ``crop`` sized training crops with one affine resampling (random zoom in
``scale_range``, flips, 90-degree rotations; bilinear for the image, nearest for the
labels), then H&E stain jitter and brightness/contrast.

Stain jitter follows the usual H&E augmentation: the image is unmixed into
haematoxylin/eosin/DAB optical densities with scikit-image's colour-deconvolution
matrices (the maths of ``rgb2hed``/``hed2rgb``), each stain is scaled and shifted by a
small random amount, and the image is re-mixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import hed2rgb, hed_from_rgb, rgb2hed, rgb_from_hed

__all__ = ["AugmentConfig", "augment_batch", "read_size", "restain", "stain_jitter"]

_LOG_EPS = math.log(1e-6)  # skimage's floor on RGB before the log
_HED_FROM_RGB = torch.as_tensor(hed_from_rgb, dtype=torch.float32)
_RGB_FROM_HED = torch.as_tensor(rgb_from_hed, dtype=torch.float32)
# rotation by k * 90 degrees in (x, y) grid coordinates
_ROT90 = torch.tensor([[[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]]], dtype=torch.float32)


@dataclass
class AugmentConfig:
    flips: bool = True
    rot90: bool = True
    stain_sigma: float = 0.05  # multiplicative jitter of each stain's optical density
    stain_bias: float = 0.02  # additive jitter of each stain's optical density
    brightness: float = 0.08
    contrast: float = 0.10
    scale_range: tuple[float, float] = (0.8, 1.25)  # side of the source window / crop side


def read_size(crop: int, cfg: AugmentConfig) -> int:
    """Side of the raw window to read so that any scale in ``scale_range`` (and any
    90-degree rotation or flip) of a ``crop`` crop around its centre fits in it."""
    side = math.ceil(crop * max(cfg.scale_range) - 1e-9)
    return max(side + side % 2, 2)


def augment_batch(
    images: torch.Tensor, labels: torch.Tensor, crop: int, cfg: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops of ``crop`` px from the centres of raw windows.

    Args:
        images: ``(B, R, R, 3)`` uint8 on the training device.
        labels: ``(B, R, R)`` uint8 (0 = unlabeled) on the same device.
        crop: output side.
        cfg: augmentation settings.
        generator: CPU generator; the only source of randomness.

    Returns:
        ``x`` ``(B, 3, crop, crop)`` float in [0, 1] and ``y`` ``(B, crop, crop)`` long;
        labels falling outside the window are 0.
    """
    b, r = images.shape[0], images.shape[1]
    device = images.device
    u = torch.rand(b, 12, generator=generator)  # all draws on the CPU, one call
    lo, hi = cfg.scale_range
    scale = lo + (hi - lo) * u[:, 0]
    k = (u[:, 1] * 4).long().clamp_(max=3) if cfg.rot90 else torch.zeros(b, dtype=torch.long)
    flip = torch.ones(b, 2)
    if cfg.flips:
        flip = torch.where(u[:, 2:4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    # output grid (x, y) -> source: flip the output axes, rotate, zoom to the source window
    theta[:, :, :2] = _ROT90[k] * flip[:, None, :] * (scale * crop / r)[:, None, None]
    theta = theta.to(device)
    grid = F.affine_grid(theta, [b, 1, crop, crop], align_corners=False)
    img = images.permute(0, 3, 1, 2).float().div_(255.0)
    x = F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    lab = labels[:, None].float()
    y = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].long()
    if cfg.stain_sigma or cfg.stain_bias:
        alpha = 1.0 + cfg.stain_sigma * (2 * u[:, 4:7] - 1)
        beta = cfg.stain_bias * (2 * u[:, 7:10] - 1)
        x = stain_jitter(x, alpha.to(device), beta.to(device))
    if cfg.brightness or cfg.contrast:
        c = (1.0 + cfg.contrast * (2 * u[:, 10] - 1)).to(device)[:, None, None, None]
        br = (cfg.brightness * (2 * u[:, 11] - 1)).to(device)[:, None, None, None]
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean + br
    return x.clamp_(0.0, 1.0), y


def stain_jitter(img: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``hed2rgb(rgb2hed(img) * alpha + beta)`` for ``img`` ``(B, 3, H, W)`` float in
    [0, 1] and per-image ``alpha``/``beta`` ``(B, 3)``, as scikit-image computes it."""
    b, _, h, w = img.shape
    m_in = _HED_FROM_RGB.to(img.device)
    m_out = _RGB_FROM_HED.to(img.device)
    od = img.reshape(b, 3, h * w).clamp(min=1e-6).log_()
    hed = torch.matmul(m_in.T / _LOG_EPS, od).clamp_(min=0.0)  # (B, 3 stains, HW)
    # (hed * alpha + beta) @ rgb_from_hed * log(1e-6), as one batched affine map
    a = _LOG_EPS * m_out.T * alpha[:, None, :]
    v = _LOG_EPS * beta @ m_out
    log_rgb = torch.baddbmm(v[:, :, None], a, hed)
    return log_rgb.exp_().clamp_(0.0, 1.0).view(b, 3, h, w)


def restain(image: np.ndarray, h: float = 1.0, e: float = 1.0, d: float = 0.0) -> np.ndarray:
    """Simulate another lab's staining: scale haematoxylin/eosin optical densities by
    ``h``/``e`` and add ``d`` of DAB-like brown; RGB uint8 in and out."""
    hed = rgb2hed(image[..., :3].astype(np.float32) / 255.0)
    hed[..., 0] *= h
    hed[..., 1] *= e
    hed[..., 2] += d
    return (np.clip(hed2rgb(hed), 0, 1) * 255 + 0.5).astype(np.uint8)

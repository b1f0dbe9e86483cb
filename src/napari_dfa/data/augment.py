"""Augmentations for histology crops: flips, 90-degree rotations, H&E stain jitter,
brightness/contrast. Operate on numpy crops ``(H, W, 3)`` uint8 + labels ``(H, W)``.

Stain jitter follows the usual H&E augmentation: the image is unmixed into
haematoxylin/eosin/DAB optical densities with scikit-image's colour deconvolution, each
stain is scaled and shifted by a small random amount, and the image is re-mixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.color import hed2rgb, rgb2hed

__all__ = ["AugmentConfig", "augment_pair", "restain", "stain_jitter"]


@dataclass
class AugmentConfig:
    flips: bool = True
    rot90: bool = True
    stain_sigma: float = 0.05  # multiplicative jitter of each stain's optical density
    stain_bias: float = 0.02  # additive jitter of each stain's optical density
    brightness: float = 0.08
    contrast: float = 0.10
    scale_range: tuple[float, float] = (0.8, 1.25)  # crop-size jitter, used by the sampler


def augment_pair(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Random geometric + colour augmentation of one crop; returns new arrays."""
    if cfg.flips and rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    if cfg.flips and rng.random() < 0.5:
        image, labels = image[::-1], labels[::-1]
    if cfg.rot90:
        k = int(rng.integers(4))
        image, labels = np.rot90(image, k), np.rot90(labels, k)
    img = image.astype(np.float32) / 255.0
    if cfg.stain_sigma or cfg.stain_bias:
        img = stain_jitter(img, rng, cfg.stain_sigma, cfg.stain_bias)
    if cfg.brightness or cfg.contrast:
        c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        b = rng.uniform(-cfg.brightness, cfg.brightness)
        mean = img.mean()
        img = (img - mean) * c + mean + b
    img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img), np.ascontiguousarray(labels)


def stain_jitter(img: np.ndarray, rng: np.random.Generator, sigma: float, bias: float) -> np.ndarray:
    """Jitter H, E and DAB optical densities of an RGB float image in [0, 1]."""
    hed = rgb2hed(img)
    alpha = rng.uniform(1 - sigma, 1 + sigma, size=3)
    beta = rng.uniform(-bias, bias, size=3)
    return hed2rgb(hed * alpha + beta).astype(np.float32)


def restain(image: np.ndarray, h: float = 1.0, e: float = 1.0, d: float = 0.0) -> np.ndarray:
    """Simulate another lab's staining: scale haematoxylin/eosin optical densities by
    ``h``/``e`` and add ``d`` of DAB-like brown; RGB uint8 in and out."""
    hed = rgb2hed(image[..., :3].astype(np.float32) / 255.0)
    hed[..., 0] *= h
    hed[..., 1] *= e
    hed[..., 2] += d
    return (np.clip(hed2rgb(hed), 0, 1) * 255 + 0.5).astype(np.uint8)

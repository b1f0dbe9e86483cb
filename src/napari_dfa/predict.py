"""Whole-image prediction of in-memory images (the tiled engine handles big images)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from napari_dfa.data.images import to_rgb_uint8

__all__ = ["predict_image", "predict_logits"]


def _forward(model, image: np.ndarray, device=None):
    """``(K, H, W)`` float32 logits as a torch tensor on the model's device."""
    import torch

    rgb = to_rgb_uint8(image)
    dev = device or next(model.parameters()).device
    x = torch.from_numpy(rgb).to(dev).permute(2, 0, 1)[None].float().div_(255.0)
    use_amp = dev.type == "cuda"
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
        return model.predict_logits(x)[0].float()


def predict_logits(model, image: np.ndarray, device=None) -> np.ndarray:
    """Class logits ``(K, H, W)`` float32 of an RGB image (whole-image forward)."""
    return _forward(model, image, device).cpu().numpy()


def predict_image(model, image: np.ndarray, device=None) -> np.ndarray:
    """Class index per pixel ``(H, W)`` uint8 in ``1..K`` (internal convention)."""
    from napari_dfa.model.argmax import class_argmax

    return class_argmax(_forward(model, image, device)).cpu().numpy() + np.uint8(1)


def predict_many(model, images: Iterable[np.ndarray], device=None) -> Iterable[np.ndarray]:
    for img in images:
        yield predict_image(model, img, device)

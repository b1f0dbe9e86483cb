"""Class index per pixel from logits, fast on CPUs.

``torch.argmax`` over the class axis of ``(K, H, W)`` logits reduces along a strided axis;
on a CPU that took ~190 ms for 5 x 1024^2 logits, as long as most of the model's forward
pass. A running maximum over the K planes reads each plane contiguously (~17 ms) and gives
the same answer (first maximum wins, as ``argmax``).
"""

from __future__ import annotations

import torch

__all__ = ["class_argmax"]


def class_argmax(logits: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Index of the largest logit along ``dim`` as ``uint8`` (ties: the first, like
    :func:`torch.argmax`). ``logits`` has at most 256 classes along ``dim``."""
    k = logits.shape[dim]
    if k > 256:
        raise ValueError(f"class_argmax supports at most 256 classes, got {k}")
    if logits.device.type != "cpu":
        return logits.argmax(dim).to(torch.uint8)
    planes = logits.unbind(dim)
    best = planes[0].clone()
    index = torch.zeros(best.shape, dtype=torch.uint8, device=logits.device)
    for i, plane in enumerate(planes[1:], start=1):
        index.masked_fill_(plane > best, i)
        torch.maximum(best, plane, out=best)
    return index

"""The Dynamic Focal Attention bias: a learnable per-class bias on cross-attention logits.

A bias that is constant over keys cancels in the softmax over keys, so the per-class
bias ``b`` must be multiplied by something that varies over keys. We use the class
probabilities ``P[c, p]`` predicted by the previous decoder layer (detached):

* ``query``: the query of class ``c`` gets ``b_c * P[c, p]`` on key ``p`` — a learnable,
  class-specific focus strength on its own predicted region (a soft, class-dependent
  version of masked attention);
* ``key``: every query gets ``sum_c b_c * P[c, p]`` on key ``p`` — keys are up-weighted
  by the bias of the class they (probably) belong to;
* ``none``: plain masked attention.

The bias is initialised from the class frequency prior ``pi`` (``neg_log_freq``:
``b = -tau * log pi``, centred; ``log_freq``: ``+tau * log pi``, centred; ``zero``) and
trained end to end (or frozen). See ``docs/method.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["PRIOR_FLOOR", "FocalBias", "frequency_prior", "initial_bias"]

PRIOR_FLOOR = 1e-3


def frequency_prior(counts: Sequence[float] | np.ndarray, floor: float = PRIOR_FLOOR) -> list[float]:
    """Class frequencies ``pi`` from annotated pixel counts, with a floor for empty classes.

    Classes with no annotated pixel get ``floor`` (before renormalisation), so that
    ``log pi`` stays finite and an unseen class starts as "rare".
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(c < 0):
        raise ValueError("counts must be a non-empty 1-D array of non-negative numbers")
    total = c.sum()
    pi = c / total if total > 0 else np.full_like(c, 1.0 / c.size)
    pi = np.maximum(pi, floor)
    return (pi / pi.sum()).tolist()


def initial_bias(prior: Sequence[float], init: str, tau: float = 1.0) -> torch.Tensor:
    """The bias at initialisation for a prior and an init rule (centred to mean 0)."""
    logp = torch.tensor([math.log(p) for p in prior], dtype=torch.float32)
    if init == "neg_log_freq":
        b = -tau * logp
    elif init == "log_freq":
        b = tau * logp
    elif init == "zero":
        b = torch.zeros_like(logp)
    else:
        raise ValueError(f"unknown bias init {init!r}")
    return b - b.mean()


class FocalBias(nn.Module):
    """Holds ``b`` (one scalar per class) and turns class probabilities into attention bias."""

    def __init__(
        self,
        prior: Sequence[float],
        placement: str = "query",
        init: str = "neg_log_freq",
        learnable: bool = True,
        tau: float = 1.0,
    ) -> None:
        super().__init__()
        if placement not in ("query", "key", "none"):
            raise ValueError(f"unknown bias placement {placement!r}")
        self.placement = placement
        b0 = initial_bias(prior, init, tau)
        self.bias = nn.Parameter(b0.clone(), requires_grad=learnable and placement != "none")
        self.register_buffer("bias_init", b0.clone())
        self.register_buffer("prior", torch.tensor(list(prior), dtype=torch.float32))

    @property
    def active(self) -> bool:
        return self.placement != "none"

    def forward(self, probs: torch.Tensor) -> torch.Tensor | None:
        """Attention-logit bias from class probabilities.

        Args:
            probs: ``(N, K, S)`` probability of class ``k`` at key ``s`` (detached).

        Returns:
            ``(N, K, S)`` for ``query``, ``(N, 1, S)`` for ``key``, ``None`` for ``none``.
        """
        if self.placement == "query":
            return self.bias.view(1, -1, 1).to(probs.dtype) * probs
        if self.placement == "key":
            return torch.einsum("k,nks->ns", self.bias.to(probs.dtype), probs).unsqueeze(1)
        return None

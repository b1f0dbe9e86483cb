"""Attention blocks of the transformer decoder (post-norm, no dropout, as in Mask2Former).

:class:`CrossAttention` has two numerically equivalent paths: a fused one
(``torch.nn.functional.scaled_dot_product_attention``) used by default, and an explicit
one that also returns the attention weights for inspection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossAttention", "FFN", "SelfAttention"]


class _MultiHead(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        for lin in (self.q, self.k, self.v, self.proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        return x.view(n, t, self.heads, d // self.heads).transpose(1, 2)

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        bias: torch.Tensor | None,
        explicit: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self._split(q), self._split(k), self._split(v)
        if explicit:
            logits = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            if bias is not None:
                logits = logits + bias
            attn = logits.softmax(dim=-1)
            out = attn @ v
        else:
            attn = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        n, h, t, dh = out.shape
        return out.transpose(1, 2).reshape(n, t, h * dh), attn


class CrossAttention(_MultiHead):
    """Class queries attend to image keys; ``bias`` carries the mask and the DFA bias.

    Keys and values are projected on the memory *map* (:meth:`project_memory`) before
    they are cut into overlapping windows, so each pixel is projected once rather than
    once per window; projecting first is exact because the projections are linear.
    """

    def project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, D, h, w)`` -> channels-last key and value maps ``(B, h, w, D)``.

        The key map has no bias: :meth:`key_offset` adds it with the position embedding.
        """
        x = memory.permute(0, 2, 3, 1)
        return F.linear(x, self.k.weight), self.v(x)

    def key_offset(self, key_pos: torch.Tensor) -> torch.Tensor:
        """Projected positional embedding plus key bias, ``(S, D)``."""
        return self.k(key_pos)

    def forward(
        self,
        tgt: torch.Tensor,
        query_pos: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        bias: torch.Tensor | None = None,
        return_attn: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Args:
        tgt: ``(N, K, D)`` query states; ``query_pos``: ``(K, D)``.
        keys, values: ``(N, S, D)`` projected keys (incl. position) and values.
        bias: ``(N, 1, K or 1, S)`` additive logits (``-inf`` hides a key).
        return_attn: use the explicit path and return ``(N, heads, K, S)`` weights.
        """
        out, attn = self._attend(self.q(tgt + query_pos), keys, values, bias, return_attn)
        return self.norm(tgt + self.proj(out)), attn


class SelfAttention(_MultiHead):
    """Class queries attend to each other."""

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        qk = tgt + query_pos
        out, _ = self._attend(self.q(qk), self.k(qk), self.v(tgt), None, False)
        return self.norm(tgt + self.proj(out))


class FFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.net(x))

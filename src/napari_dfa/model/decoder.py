"""Transformer decoder with one query per class and DFA-biased masked cross-attention.

Each layer: masked cross-attention (with the DFA bias) -> self-attention -> FFN, as in
Mask2Former. Queries are class queries (query ``k`` is class ``k``); their states live on a
grid of 32-pixel cells and attend to a local window of the memory level fed to that
layer (strides 32, 16, 8 round-robin), which keeps the model translation-equivariant and
tileable. Every layer (and the initial queries) predicts per-pixel class logits
``<MLP(q_k), E(p)>`` at stride 4 for deep supervision; the next layer's attention mask
and DFA bias come from those (detached) predictions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_dfa.model.attention import FFN, CrossAttention, SelfAttention
from napari_dfa.model.focal_bias import FocalBias
from napari_dfa.model.windows import LocalWindows

__all__ = ["DFADecoder"]

LEVEL_STRIDES = (32, 16, 8)
# inference: bytes of key windows per band of cell rows (the unfolded keys copy each key
# 9x). On a CPU small bands cost nothing and keep the peak low: 8 MB peaked ~100 MB lower
# than 32 MB over a 16384^2 run with 2 streams (917-934 vs 1034-1082 MB), same speed. On a
# GPU each band is ~25 kernel launches: large bands (one per layer for a batch of 2112^2 windows).
BAND_BYTES = 8 * 2**20
BAND_BYTES_GPU = 2**30


class MLP(nn.Module):
    def __init__(self, din: int, dhidden: int, dout: int, layers: int) -> None:
        super().__init__()
        dims = [din] + [dhidden] * (layers - 1) + [dout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DFADecoder(nn.Module):
    def __init__(
        self,
        num_classes: int,
        dim: int,
        mask_dim: int,
        heads: int,
        layers: int,
        ffn_dim: int,
        window_cells: int,
        mask_threshold: float,
        focal_bias: FocalBias,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mask_threshold = mask_threshold
        self.focal_bias = focal_bias
        self.query_feat = nn.Parameter(torch.randn(num_classes, dim) * 0.02)
        self.query_pos = nn.Parameter(torch.randn(num_classes, dim) * 0.02)
        self.level_embed = nn.Parameter(torch.zeros(len(LEVEL_STRIDES), dim))
        self.windows = [LocalWindows(s, window_cells) for s in LEVEL_STRIDES]
        self.key_pos = nn.ParameterList(nn.Parameter(torch.randn(w.size, dim) * 0.02) for w in self.windows)
        self.cross = nn.ModuleList(CrossAttention(dim, heads) for _ in range(layers))
        self.self_attn = nn.ModuleList(SelfAttention(dim, heads) for _ in range(layers))
        self.ffn = nn.ModuleList(FFN(dim, ffn_dim) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.mask_embed = MLP(dim, dim, mask_dim, 3)

    def forward(
        self,
        memory: list[torch.Tensor],
        mask_features: torch.Tensor,
        return_attn: bool = False,
        all_layers: bool | None = None,
        points: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Args:
            memory: ``[(B, D, H/32, W/32), (B, D, H/16, W/16), (B, D, H/8, W/8)]``.
            mask_features: ``(B, Dm, H/4, W/4)`` per-pixel embeddings.
            return_attn: also return per-layer attention maps ``(B, heads, K, h_l, w_l)``:
                the attention mass each key receives from each class query.
            all_layers: return stride-4 logits of every layer (deep supervision); by
                default only in training mode, otherwise only the final layer's.
            points: ``(B, P, 2)`` point coordinates (x, y) normalised to ``[-1, 1]``
                (``grid_sample`` convention, ``align_corners=False``): return every
                layer's logits at these points only, ``(B, K, P)`` (Mask2Former's
                point-sampled loss; much cheaper than full maps in training).

        Returns:
            ``(logits per layer, attention maps)``.
        """
        if all_layers is None:
            all_layers = self.training
        readout = self._logits
        b, _, gh, gw = memory[0].shape
        if points is not None:
            all_layers = True
            # shared by all layers: E at the points and the bilinear weights of the query grid
            grid = points.unsqueeze(2).to(mask_features.dtype)
            e_pts = F.grid_sample(mask_features, grid, mode="bilinear", padding_mode="border", align_corners=False)
            e_pts = e_pts[..., 0].transpose(1, 2)  # (B, P, Dm)
            weights = bilinear_weights(points.to(mask_features.dtype), gh, gw)  # (B, P, L)

            def readout(q: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
                if feats is not mask_features:
                    return self._logits(q, feats)
                return self._point_logits(q, e_pts, weights)

        k = self.num_classes
        n_levels = len(LEVEL_STRIDES)
        # per-pixel embeddings pooled to each memory level, for the attention masks
        pooled = [F.avg_pool2d(mask_features, s // 4) for s in LEVEL_STRIDES]
        tgt = self.query_feat.unsqueeze(0).expand(b * gh * gw, -1, -1)
        q = self._mask_queries(tgt, b, gh, gw)
        logits = [readout(q, mask_features)] if all_layers else []
        attn_maps: list[torch.Tensor] = []
        n_layers = len(self.cross)
        for i, cross in enumerate(self.cross):
            lvl = i % n_levels
            win = self.windows[lvl]
            mem = memory[lvl]
            size = (mem.shape[-2], mem.shape[-1])
            kmap, vmap = cross.project_memory(mem + self.level_embed[lvl].view(1, -1, 1, 1))
            probs = self._logits(q.detach(), pooled[lvl].detach()).softmax(dim=1)
            step = (
                gh
                if return_attn or torch.is_grad_enabled()
                else self._rows_per_step(win, b, gw, kmap.shape[-1], kmap.device.type != "cpu")
            )
            if step >= gh:
                tgt, attn = self._cross(cross, win, lvl, tgt, kmap, vmap, probs, b, size, None, return_attn)
            else:  # inference on a big image: a band of cell rows at a time (same result, less memory)
                cells = tgt.view(b, gh, gw, *tgt.shape[1:])
                new = torch.empty_like(cells)
                for r0 in range(0, gh, step):
                    rows = slice(r0, min(r0 + step, gh))
                    band = cells[:, rows].reshape(-1, *tgt.shape[1:])
                    out, _ = self._cross(cross, win, lvl, band, kmap, vmap, probs, b, size, rows, False)
                    new[:, rows] = out.view(b, -1, gw, *tgt.shape[1:])
                tgt, attn = new.view_as(tgt), None
            tgt = self.self_attn[i](tgt, self.query_pos)
            tgt = self.ffn[i](tgt)
            q = self._mask_queries(tgt, b, gh, gw)
            if all_layers or i == n_layers - 1:
                logits.append(readout(q, mask_features))
            if attn is not None:
                n, h, _, s = attn.shape
                folded = win.fold(attn.reshape(n, h * k, s), b, size)
                attn_maps.append(folded.view(b, h, k, *size))
        if not logits:  # a decoder without layers
            logits.append(readout(q, mask_features))
        return logits, attn_maps

    def _cross(self, cross, win, lvl, tgt, kmap, vmap, probs, b, size, rows, return_attn):
        """Masked cross-attention of the query states ``tgt`` of the cells in ``rows``
        (all if ``None``) to their key windows of the level maps."""
        keys = win.unfold(kmap, channels_last=True, rows=rows) + cross.key_offset(self.key_pos[lvl])  # (N, S, D)
        values = win.unfold(vmap, channels_last=True, rows=rows)
        p = win.unfold(probs, rows=rows).transpose(1, 2)  # (N, K, S)
        bias = self._attention_bias(p, win.valid(size, kmap.device, rows), b)
        return cross(tgt, self.query_pos, keys, values, bias, return_attn)

    @staticmethod
    def _rows_per_step(win: LocalWindows, b: int, gw: int, dim: int, accelerator: bool = False) -> int:
        """Cell rows per band so that a band's key windows take about :data:`BAND_BYTES`
        (:data:`BAND_BYTES_GPU` on an accelerator)."""
        return max(1, (BAND_BYTES_GPU if accelerator else BAND_BYTES) // (b * gw * win.size * dim * 4))

    def _attention_bias(self, probs: torch.Tensor, valid: torch.Tensor, batch: int) -> torch.Tensor:
        """``(N, 1, K, S)`` additive logits: hard mask (``-inf``) + DFA bias.

        A key is hidden from class ``k`` where ``P[k] < threshold`` or where the window
        runs over the image border. Rows that would hide every in-image key are opened
        to all in-image keys (Mask2Former's guard), so no row is ever all ``-inf``.
        """
        n, k, s = probs.shape
        outside = ~valid.repeat(batch, 1).unsqueeze(1)  # (N, 1, S)
        hidden = (probs < self.mask_threshold) | outside
        full = hidden.all(dim=-1, keepdim=True)
        hidden = torch.where(full, outside, hidden)
        extra = self.focal_bias(probs)  # one new (N, K|1, S) tensor, or None
        if extra is None:
            bias = probs.new_zeros(n, k, s)
        elif extra.shape[1] == 1:
            bias = extra.expand(n, k, s).contiguous()
        else:
            bias = extra
        return bias.masked_fill_(hidden, float("-inf")).unsqueeze(1)

    def _mask_queries(self, tgt: torch.Tensor, b: int, gh: int, gw: int) -> torch.Tensor:
        """Mask embeddings of the query states as a grid ``(B, K * Dm, gh, gw)``."""
        q = self.mask_embed(self.norm(tgt))  # (B*L, K, Dm)
        return q.reshape(b, gh, gw, -1).permute(0, 3, 1, 2)

    def _logits(self, q: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """``<up(q_k)(p), E(p)>``: queries bilinearly upsampled to the feature map.

        Channels-last upsampling + a batched matmul; no ``(B, K, Dm, H, W)`` copies.
        """
        b, dm, h, w = feats.shape
        k = self.num_classes
        up = F.interpolate(
            q.contiguous(memory_format=torch.channels_last), size=(h, w), mode="bilinear", align_corners=False
        )
        up = up.permute(0, 2, 3, 1).reshape(b * h * w, k, dm)
        e = feats.permute(0, 2, 3, 1).reshape(b * h * w, dm, 1)
        return torch.bmm(up, e).view(b, h, w, k).permute(0, 3, 1, 2)

    def _point_logits(self, q: torch.Tensor, e_pts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Logits at points ``(B, K, P)`` from the query grid ``q`` ``(B, K*Dm, gh, gw)``,
        per-pixel embeddings sampled at the points ``(B, P, Dm)`` and the bilinear
        weights of the points on the query grid ``(B, P, L)``.

        At stride-4 pixel centres this equals :meth:`_logits` exactly.
        """
        b, kd = q.shape[:2]
        k = self.num_classes
        q_pts = torch.bmm(weights, q.flatten(2).transpose(1, 2))  # (B, P, K*Dm)
        p = q_pts.shape[1]
        return (q_pts.view(b, p, k, kd // k) * e_pts.unsqueeze(2)).sum(-1).transpose(1, 2)


def bilinear_weights(points: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """Dense bilinear interpolation weights ``(B, P, gh * gw)`` of points on a grid.

    ``points`` are ``(B, P, 2)`` (x, y) in ``[-1, 1]``; same convention as
    ``grid_sample(..., align_corners=False, padding_mode="border")``.
    """

    def axis(c: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = ((c + 1) * n / 2 - 0.5).clamp(0, n - 1)
        i0 = u.floor().long().clamp(max=n - 1)
        i1 = (i0 + 1).clamp(max=n - 1)
        w1 = u - i0.to(u.dtype)
        return i0, i1, w1

    x0, x1, wx = axis(points[..., 0], gw)
    y0, y1, wy = axis(points[..., 1], gh)
    b, p = points.shape[:2]
    out = points.new_zeros(b, p, gh * gw)
    for yi, wyi in ((y0, 1 - wy), (y1, wy)):
        for xi, wxi in ((x0, 1 - wx), (x1, wx)):
            out.scatter_add_(2, (yi * gw + xi).unsqueeze(-1), (wyi * wxi).unsqueeze(-1))
    return out

"""Small pre-norm transformer blocks on scaled_dot_product_attention.

Our own blocks (rather than nn.TransformerEncoder) so there is no inference fast path that
computes padded positions differently from the training path: a rollout and the learner's
recomputation must run the same arithmetic for the log-prob ratio to be exact.
Masks are boolean, True = may attend.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [B, heads, L, dim/heads] of a context, to reuse across many queries."""
        batch, length, dim = context.shape
        k, v = self.kv(context).view(batch, length, 2, self.num_heads, -1).unbind(2)
        return k.transpose(1, 2), v.transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        mask: torch.Tensor | None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x [B, Lq, dim] attends to context [B, Lk, dim] (or to precomputed `kv`); mask
        broadcastable to [B, 1, Lq, Lk].

        With `kv` of C < B rows, every G = B / C consecutive rows of x share one context row
        (e.g. the K denoising steps of one sample): their queries are stacked along the query
        axis of that context instead of repeating the context G times. Attention rows are
        independent, so this is the same function, minus G - 1 key/value projections."""
        batch, length, dim = x.shape
        heads = self.num_heads
        q = self.q(x).view(batch, length, heads, dim // heads).transpose(1, 2)
        if kv is None:
            assert context is not None, "attention needs a context or precomputed keys/values"
            kv = self.project_kv(context)
        k, v = kv
        contexts = k.shape[0]
        groups = batch // contexts
        if groups * contexts != batch:
            raise ValueError(f"{batch} query rows cannot share {contexts} contexts evenly")
        if groups > 1:
            q = q.reshape(contexts, groups, heads, length, -1).transpose(1, 2)
            q = q.reshape(contexts, heads, groups * length, -1)
        out = F.scaled_dot_product_attention(q, k, v, mask)
        if groups > 1:
            out = out.reshape(contexts, heads, groups, length, -1).transpose(1, 2)
            out = out.reshape(batch, heads, length, -1)
        return self.out(out.transpose(1, 2).reshape(batch, length, dim))


class MLP(nn.Sequential):
    def __init__(self, dim: int, hidden: int, out_dim: int | None = None) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim or dim))


class Block(nn.Module):
    """Self-attention (+ optional cross-attention to a context) + MLP, pre-norm residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, cross: bool = False) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim) if cross else None
        self.cross_attn = Attention(dim, num_heads) if cross else None
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        cross_mask: torch.Tensor | None = None,
        context_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, self_mask)
        if self.cross_attn is not None and self.norm_cross is not None:
            assert context is not None or context_kv is not None, "cross-attention needs a context"
            x = x + self.cross_attn(self.norm_cross(x), context, cross_mask, context_kv)
        return x + self.mlp(self.norm_mlp(x))


def sinusoidal_embedding(
    t: torch.Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0
) -> torch.Tensor:
    """Embedding [B, dim] of times t [B] in [0, 1]; periods spaced geometrically (pi0's choice)."""
    half = dim // 2
    fraction = torch.linspace(0.0, 1.0, half, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angles = t.float()[:, None] * (2.0 * math.pi / period)[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))

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

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x [B, Lq, dim] attends to context [B, Lk, dim]; mask broadcastable to [B, 1, Lq, Lk]."""
        batch, length, dim = x.shape
        heads = self.num_heads
        q = self.q(x).view(batch, length, heads, dim // heads).transpose(1, 2)
        k, v = self.kv(context).view(batch, context.shape[1], 2, heads, dim // heads).unbind(2)
        out = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), mask)
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
    ) -> torch.Tensor:
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, self_mask)
        if self.cross_attn is not None and self.norm_cross is not None:
            assert context is not None, "cross-attention block needs a context"
            x = x + self.cross_attn(self.norm_cross(x), context, cross_mask)
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

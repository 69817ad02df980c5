"""The tensor operations SmolVLA and pi0 share, written from LeRobot 0.4.4's equations.

Each function states which reference function it mirrors; tests check them against hand values
and against the reference formulas (tests/models/vla/test_ops.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# pi0 masks attention scores additively with this value (lerobot.utils.constants)
OPENPI_ATTENTION_MASK_VALUE = -2.3819763e38


def make_att_2d_masks(pad_masks: torch.Tensor, att_masks: torch.Tensor) -> torch.Tensor:
    """big_vision's block-causal mask: token i attends to valid token j iff cumsum(att)[j] <=
    cumsum(att)[i]. pad_masks, att_masks [B, L] -> bool [B, L, L]."""
    cumsum = torch.cumsum(att_masks.long(), dim=1)
    allowed = cumsum[:, None, :] <= cumsum[:, :, None]
    valid = pad_masks[:, None, :] & pad_masks[:, :, None]
    return allowed & valid


def sinusoidal_time_embedding(
    time: torch.Tensor, dimension: int, min_period: float, max_period: float
) -> torch.Tensor:
    """[B] -> [B, dimension] sine-cosine embedding (create_sinusoidal_pos_embedding), in float64
    like the reference (float32 on MPS)."""
    if dimension % 2:
        raise ValueError(f"time embedding dimension {dimension} must be even")
    dtype = torch.float32 if time.device.type == "mps" else torch.float64
    fraction = torch.linspace(0.0, 1.0, dimension // 2, dtype=dtype, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (1.0 / period * 2 * math.pi)[None, :] * time[:, None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def pad_last_dim(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad the last dimension to `size` (pad_vector)."""
    if x.shape[-1] >= size:
        return x
    return F.pad(x, (0, size - x.shape[-1]))


def resize_with_pad_smolvla(img: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """SmolVLA's resize_with_pad: [B, C, h, w] in [0, 1] -> [B, C, height, width], aspect kept,
    padded with 0 on the left and top."""
    cur_h, cur_w = img.shape[2:]
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    resized = F.interpolate(img, size=(new_h, new_w), mode="bilinear", align_corners=False)
    pad_h, pad_w = max(0, int(height - new_h)), max(0, int(width - new_w))
    return F.pad(resized, (pad_w, 0, pad_h, 0), value=0.0)


def resize_with_pad_pi0(img: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """pi0's resize_with_pad_torch for float channels-last images [B, h, w, C] (LeRobot calls it
    on [0, 1] images): bilinear resize, clamp to [-1, 1], centred padding with -1.0."""
    x = img.permute(0, 3, 1, 2)
    cur_h, cur_w = x.shape[2:]
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    resized = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    resized = resized.clamp(-1.0, 1.0)
    pad_h0, rem_h = divmod(height - new_h, 2)
    pad_w0, rem_w = divmod(width - new_w, 2)
    padded = F.pad(resized, (pad_w0, pad_w0 + rem_w, pad_h0, pad_h0 + rem_h), value=-1.0)
    return padded.permute(0, 2, 3, 1)


def smolvla_rope(x: torch.Tensor, positions: torch.Tensor, max_wavelength: float = 10_000):
    """SmolVLA's apply_rope: x [B, L, H, D], positions [B, L] (computed in float32)."""
    d_half = x.shape[-1] // 2
    dtype = x.dtype
    x = x.float()
    exponents = (2.0 / x.shape[-1]) * torch.arange(d_half, dtype=torch.float32, device=x.device)
    timescale = max_wavelength**exponents
    radians = (positions[..., None].float() / timescale[None, None, :])[..., None, :]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x.split(d_half, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(dtype)


def _expand_kv(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, L, kv, D] -> [B, L, heads, D]: each kv head serves heads/kv query heads, in order."""
    groups = num_heads // x.shape[2]
    return x.repeat_interleave(groups, dim=2) if groups > 1 else x


def smolvla_attention(
    mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """SmolVLMWithExpertModel.eager_attention_forward: mask bool [B, Lq, Lk], q [B, Lq, H, D],
    k/v [B, Lk, kv, D] -> [B, Lq, H*D]. Scores in float32, masked with float32's minimum."""
    b, lq, h, d = q.shape
    k, v = _expand_kv(k, h), _expand_kv(v, h)
    scores = torch.matmul(q.float().transpose(1, 2), k.float().transpose(1, 2).transpose(2, 3))
    # float32 before masking, as the reference does: under bf16 autocast the matmul is bf16 and
    # float32's minimum would round to -inf there (NaN rows for padded queries)
    scores = (scores * d**-0.5).float()
    scores = torch.where(mask[:, None], scores, torch.finfo(torch.float32).min)
    probs = F.softmax(scores, dim=-1).to(v.dtype)
    out = torch.matmul(probs, v.permute(0, 2, 1, 3))
    return out.permute(0, 2, 1, 3).reshape(b, lq, h * d)


def gemma_attention(
    mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scaling: float
) -> torch.Tensor:
    """transformers' Gemma eager_attention_forward as pi0 calls it: q [B, H, Lq, D], k/v
    [B, kv, Lk, D], mask bool [B, Lq, Lk] turned into pi0's additive mask -> [B, Lq, H*D]."""
    b, h, lq, d = q.shape
    groups = h // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling
    additive = torch.where(mask[:, None], 0.0, OPENPI_ATTENTION_MASK_VALUE).to(scores.dtype)
    probs = F.softmax(scores + additive, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(probs, v).transpose(1, 2)
    return out.reshape(b, lq, h * d)

"""The shared VLA tensor operations against hand values and textbook formulas."""

import math

import torch

from rl_post.models.vla.ops import (
    gemma_attention,
    make_att_2d_masks,
    pad_last_dim,
    resize_with_pad_pi0,
    resize_with_pad_smolvla,
    sinusoidal_time_embedding,
    smolvla_attention,
    smolvla_rope,
)


def test_block_masks_hand_values():
    pad = torch.tensor([[True, True, True, False, True, True]])
    # prefix-LM: tokens 0-2 bidirectional (3 is padding), 4 and 5 causal on top
    att = torch.tensor([[0, 0, 0, 0, 1, 1]])
    mask = make_att_2d_masks(pad, att)[0].int()
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 1, 0],
            [1, 1, 1, 0, 1, 1],
        ]
    )
    assert torch.equal(mask, expected)


def test_time_embedding_formula():
    t = torch.tensor([0.25])
    emb = sinusoidal_time_embedding(t, 4, 0.004, 4.0)
    periods = [0.004, 4.0]  # linspace(0, 1, 2) -> min and max period
    want = [math.sin(2 * math.pi * 0.25 / p) for p in periods] + [
        math.cos(2 * math.pi * 0.25 / p) for p in periods
    ]
    assert torch.allclose(emb[0], torch.tensor(want, dtype=torch.float64))


def test_rope_is_a_rotation_by_position_times_frequency():
    x = torch.randn(1, 3, 2, 4)
    pos = torch.tensor([[0, 1, 5]])
    out = smolvla_rope(x, pos)
    freq = 1.0 / 10_000 ** (torch.arange(2) * 2 / 4)
    for i, p in enumerate(pos[0].tolist()):
        angle = p * freq
        z = torch.complex(x[0, i, :, :2], x[0, i, :, 2:]) * torch.polar(torch.ones(2), angle)
        assert torch.allclose(out[0, i, :, :2], z.real, atol=1e-6)
        assert torch.allclose(out[0, i, :, 2:], z.imag, atol=1e-6)
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_attention_matches_a_naive_masked_softmax():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 4, 8, generator=gen)
    k = torch.randn(2, 5, 2, 8, generator=gen)
    v = torch.randn(2, 5, 2, 8, generator=gen)
    mask = torch.rand(2, 3, 5, generator=gen) > 0.3
    mask[..., 0] = True
    out = smolvla_attention(mask, q, k, v).view(2, 3, 4, 8)
    for h in range(4):
        kv = h // 2  # query heads 0,1 share kv head 0; 2,3 share 1
        scores = torch.einsum("bqd,bkd->bqk", q[:, :, h], k[:, :, kv]) / math.sqrt(8)
        probs = torch.softmax(scores.masked_fill(~mask, -1e30), dim=-1)
        want = torch.einsum("bqk,bkd->bqd", probs, v[:, :, kv])
        assert torch.allclose(out[:, :, h], want, atol=1e-5)
    gemma = gemma_attention(mask, q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), 8**-0.5)
    assert torch.allclose(gemma, out.flatten(2), atol=1e-5)


def test_smolvla_resize_pads_left_and_top_with_black():
    img = torch.ones(1, 3, 10, 20)
    out = resize_with_pad_smolvla(img, 32, 32)  # width, height
    assert out.shape == (1, 3, 32, 32)
    assert torch.all(out[:, :, :16] == 0) and torch.allclose(
        out[:, :, 16:], torch.ones(1, 3, 16, 32)
    )


def test_pi0_resize_pads_centred_with_minus_one():
    img = torch.full((1, 10, 20, 3), 0.5)
    out = resize_with_pad_pi0(img, 32, 32)
    assert out.shape == (1, 32, 32, 3)
    assert torch.all(out[:, :8] == -1) and torch.all(out[:, 24:] == -1)
    assert torch.allclose(out[:, 8:24], torch.full((1, 16, 32, 3), 0.5))


def test_pad_last_dim():
    x = torch.ones(2, 3)
    assert torch.equal(pad_last_dim(x, 5), torch.tensor([[1.0, 1, 1, 0, 0]] * 2))
    assert pad_last_dim(x, 3) is x

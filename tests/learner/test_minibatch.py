import pytest
import torch

from rl_post.learner.minibatch import (
    MicroBatchPlan,
    minibatch_layout,
    plan_micro_batches,
    select_rows,
)


def test_plan_derives_accumulation_from_micro_batch_size():
    # 24 samples / 2 minibatches = 12 per minibatch, 6 per rank on 2 ranks; micro <= 4 -> 2 x 3
    assert plan_micro_batches(24, 2, 2, 4, None) == MicroBatchPlan(2, 2, 2, 3)
    # one rank: 12 per minibatch, micro <= 4 -> 3 x 4
    assert plan_micro_batches(24, 2, 1, 4, None) == MicroBatchPlan(2, 1, 3, 4)
    # uneven: 23 samples -> minibatches of 12 and 11, planned for 12
    assert plan_micro_batches(23, 2, 1, 5, None) == MicroBatchPlan(2, 1, 3, 4)


def test_plan_honours_explicit_accumulation():
    assert plan_micro_batches(24, 1, 1, 4, 2) == MicroBatchPlan(1, 1, 2, 12)


def test_plan_rejects_batch_too_small():
    with pytest.raises(ValueError, match="num_minibatches"):
        plan_micro_batches(3, 2, 2, 4, None)


def test_layout_uses_every_sample_once_and_spreads_padding():
    plan = MicroBatchPlan(num_minibatches=2, world_size=2, grad_accum=2, micro_size=3)
    permutation = torch.randperm(21, generator=torch.Generator().manual_seed(0))
    indices, valid = minibatch_layout(permutation, plan)
    assert indices.shape == valid.shape == (2, 2, 2, 3)
    real = indices[valid]
    assert sorted(real.tolist()) == list(range(21))
    # minibatch 0 holds the first 11 permuted samples, minibatch 1 the last 10
    assert set(indices[0][valid[0]].tolist()) == set(permutation[:11].tolist())
    # 24 slots for 21 samples: each (rank, micro) slot gets 2 or 3 real rows, never 0
    per_slot = valid.sum(-1)
    assert per_slot.min() >= 2 and per_slot.max() <= 3


def test_select_rows_keeps_lists_and_nested_dicts_aligned():
    batch = {
        "obs": {"state": torch.arange(4.0)[:, None], "instruction": ["a", "b", "c", "d"]},
        "mask": torch.tensor([1.0, 0.0, 1.0, 1.0]),
    }
    out = select_rows(batch, torch.tensor([3, 0]))
    assert out["obs"]["instruction"] == ["d", "a"]
    assert out["obs"]["state"].flatten().tolist() == [3.0, 0.0]
    assert out["mask"].tolist() == [1.0, 1.0]

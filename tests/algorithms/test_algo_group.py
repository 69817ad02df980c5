import math

import pytest
import torch

from rl_post.algorithms.group import (
    broadcast_to_decisions,
    dynamic_sampling_mask,
    find_trajectories,
    grpo_advantages,
    rloo_advantages,
)

R = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
ONE_GROUP = torch.zeros(4, dtype=torch.long)


def test_grpo_uses_sample_std():
    # mean 0.5; sample std = sqrt(4 * 0.25 / 3) = sqrt(1/3); A = +-0.5 / sqrt(1/3) = +-sqrt(3)/2
    a = grpo_advantages(R, ONE_GROUP, std_normalize=True, eps=0.0)
    h = math.sqrt(3) / 2
    torch.testing.assert_close(a, torch.tensor([h, -h, -h, h], dtype=torch.float64))


def test_grpo_without_std_normalization_only_centers():
    a = grpo_advantages(R, ONE_GROUP, std_normalize=False)
    torch.testing.assert_close(a, torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=torch.float64))


def test_grpo_groups_are_independent_and_singletons_get_zero():
    returns = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 1.0, 5.0], dtype=torch.float64)
    group = torch.tensor([4, 4, 4, 4, 9, 9, 2])
    a = grpo_advantages(returns, group, eps=0.0)
    # group 9: mean 2, sample std sqrt((1 + 1) / 1) = sqrt(2); group 2 has one member: no baseline
    h, s = math.sqrt(3) / 2, 1 / math.sqrt(2)
    torch.testing.assert_close(a, torch.tensor([h, -h, -h, h, s, -s, 0.0], dtype=torch.float64))


def test_rloo_leave_one_out():
    # R=1: 1 - (0+0+1)/3 = 2/3;  R=0: 0 - (1+0+1)/3 = -2/3
    a = rloo_advantages(R, ONE_GROUP)
    t = 2 / 3
    torch.testing.assert_close(a, torch.tensor([t, -t, -t, t], dtype=torch.float64))


def test_rloo_singleton_group_gets_zero():
    a = rloo_advantages(torch.tensor([2.0, 1.0, 7.0]), torch.tensor([0, 0, 1]))
    torch.testing.assert_close(a, torch.tensor([1.0, -1.0, 0.0]))


def test_dynamic_sampling_drops_uniform_and_out_of_band_groups():
    returns = torch.tensor([1, 0, 0, 1, 1, 1, 1, 1, 0.5, 0.2, 0.3, 0.1], dtype=torch.float64)
    success = torch.tensor([1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=torch.bool)
    group = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    # group 0: rate 0.5 kept; group 1: all returns equal; group 2: rate 0.25 < 0.3
    ds = dynamic_sampling_mask(returns, success, group, min_success_rate=0.3, max_success_rate=1.0)
    assert ds.keep.tolist() == [True] * 4 + [False] * 8
    assert (ds.groups_total, ds.groups_dropped) == (3, 2)
    assert (ds.groups_dropped_uniform, ds.groups_dropped_band) == (1, 1)

    wide = dynamic_sampling_mask(returns, success, group, 0.0, 1.0)
    assert wide.keep.tolist() == [True] * 4 + [False] * 4 + [True] * 4
    assert wide.groups_dropped == 1


def test_find_trajectories_splits_at_done_and_idle_and_flags_incomplete():
    # env 0: terminates at t=1 (success), new episode t=2..3 still running (incomplete)
    # env 1: truncated at t=1, then idle (its group id while idle is arbitrary)
    reward = torch.tensor([[1.0, 0.5], [2.0, 0.5], [3.0, 9.0], [4.0, 9.0]])
    active = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0]], dtype=torch.bool)
    terminated = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=torch.bool)
    truncated = torch.tensor([[0, 0], [0, 1], [0, 0], [0, 0]], dtype=torch.bool)
    group_id = torch.tensor([[0, 0], [0, 0], [2, 7], [2, 7]])
    success = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=torch.bool)
    traj = find_trajectories(reward, active, terminated, truncated, group_id, success)
    assert traj.index.tolist() == [[0, 2], [0, 2], [1, -1], [1, -1]]
    assert traj.returns.tolist() == [3.0, 7.0, 1.0]
    assert traj.complete.tolist() == [True, False, True]
    assert traj.group.tolist() == [0, 2, 0]
    assert traj.success.tolist() == [True, False, False]
    assert traj.num_incomplete == 1

    per_decision = broadcast_to_decisions(traj.returns, traj.index, fill=-5.0)
    assert per_decision.tolist() == [[3.0, 1.0], [3.0, 1.0], [7.0, -5.0], [7.0, -5.0]]


def test_find_trajectories_rejects_group_change_inside_a_trajectory():
    ones = torch.ones(2, 1, dtype=torch.bool)
    zeros = torch.zeros(2, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="group_id changes inside a trajectory"):
        find_trajectories(torch.zeros(2, 1), ones, zeros, zeros, torch.tensor([[0], [1]]), zeros)


def test_reward_to_go_and_step_index_stay_inside_trajectories():
    from rl_post.algorithms.group import reward_to_go, step_in_trajectory

    # env 0: one trajectory of 3 decisions; env 1: a 2-decision trajectory, then a new one
    reward = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    index = torch.tensor([[0, 1], [0, 1], [0, 2]])
    torch.testing.assert_close(
        reward_to_go(reward, index), torch.tensor([[9.0, 6.0], [8.0, 4.0], [5.0, 6.0]])
    )
    assert step_in_trajectory(index).tolist() == [[0, 0], [1, 1], [2, 0]]
    inactive = torch.tensor([[0, -1], [0, 1], [-1, 1]])
    assert step_in_trajectory(inactive).tolist() == [[0, -1], [1, 0], [-1, 1]]
    torch.testing.assert_close(
        reward_to_go(reward, inactive), torch.tensor([[4.0, 0.0], [3.0, 10.0], [0.0, 6.0]])
    )

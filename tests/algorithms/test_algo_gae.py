"""GAE against hand-computed values; gamma=0.9, lam=0.8 so gamma*lam=0.72."""

import math

import torch

from rl_post.algorithms.gae import gae

G, L = 0.9, 0.8


def col(*values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype).reshape(-1, 1)


def flags(*values):
    return torch.tensor(values, dtype=torch.bool).reshape(-1, 1)


def test_four_step_episode_truncated_at_the_end():
    reward = col(1.0, 0.0, 2.0, 1.0)
    value = col(0.5, 1.0, 1.5, 2.0)
    adv, ret = gae(
        reward,
        value,
        terminated=flags(0, 0, 0, 0),
        truncated=flags(0, 0, 0, 1),
        bootstrap_value=col(0.0, 0.0, 0.0, 3.0),
        last_value=torch.tensor([10.0], dtype=torch.float64),  # unused: the episode ended
        gamma=G,
        lam=L,
    )
    # t3: 1 + 0.9*3 - 2 = 1.7                  (bootstrap V(final_obs)=3 on truncation)
    # t2: 2 + 0.9*2 - 1.5 = 2.3;   2.3 + 0.72*1.7     = 3.524
    # t1: 0 + 0.9*1.5 - 1 = 0.35;  0.35 + 0.72*3.524  = 2.88728
    # t0: 1 + 0.9*1 - 0.5 = 1.4;   1.4 + 0.72*2.88728 = 3.4788416
    expected = col(3.4788416, 2.88728, 3.524, 1.7)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + value)


def test_termination_and_truncation_mid_segment_then_segment_ends_mid_episode():
    # Column 0 terminates at t=1, column 1 truncates at t=1 (V(final_obs)=2); both start a new
    # episode at t=2 that is still running at the segment end (bootstrap last_value=1).
    reward = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    value = torch.tensor([[0.2, 0.2], [0.4, 0.4], [0.6, 0.6], [0.8, 0.8]], dtype=torch.float64)
    terminated = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=torch.bool)
    truncated = torch.tensor([[0, 0], [0, 1], [0, 0], [0, 0]], dtype=torch.bool)
    bootstrap = torch.tensor([[5.0, 5.0], [5.0, 2.0], [5.0, 5.0], [5.0, 5.0]], dtype=torch.float64)
    adv, _ = gae(
        reward,
        value,
        terminated,
        truncated,
        bootstrap,  # read only where truncated
        last_value=torch.tensor([1.0, 1.0], dtype=torch.float64),
        gamma=G,
        lam=L,
    )
    # Both: t3: 0 + 0.9*1.0 - 0.8 = 0.1;  t2: 0 + 0.9*0.8 - 0.6 = 0.12; 0.12 + 0.72*0.1 = 0.192
    # Terminated: t1: 1 + 0 - 0.4 = 0.6 (no bootstrap, no carry); t0: 0.16 + 0.72*0.6 = 0.592
    # Truncated:  t1: 1 + 0.9*2 - 0.4 = 2.4 (no carry);          t0: 0.16 + 0.72*2.4 = 1.888
    expected = torch.tensor(
        [[0.592, 1.888], [0.6, 2.4], [0.192, 0.192], [0.1, 0.1]], dtype=torch.float64
    )
    torch.testing.assert_close(adv, expected)


def test_inactive_decisions_get_zero_and_do_not_leak():
    # Terminates at t=1, idles at t=2..3 (garbage reward/value, even nan), new episode at t=4.
    nan = math.nan
    reward = col(1.0, 1.0, nan, 99.0, 0.0)
    value = col(0.5, 0.5, nan, 77.0, 1.0)
    adv, ret = gae(
        reward,
        value,
        terminated=flags(0, 1, 0, 0, 0),
        truncated=flags(0, 0, 0, 0, 0),
        bootstrap_value=col(0.0, 0.0, 0.0, 0.0, 0.0),
        last_value=torch.tensor([2.0], dtype=torch.float64),
        gamma=G,
        lam=L,
        active=flags(1, 1, 0, 0, 1),
    )
    # t4: 0 + 0.9*2 - 1 = 0.8; t1: 1 - 0.5 = 0.5; t0: 1 + 0.9*0.5 - 0.5 + 0.72*0.5 = 1.31
    torch.testing.assert_close(adv, col(1.31, 0.5, 0.0, 0.0, 0.8))
    active = flags(1, 1, 0, 0, 1)
    torch.testing.assert_close(ret[active], torch.tensor([1.81, 1.0, 1.8], dtype=torch.float64))


def test_inactive_gap_inside_an_episode_links_to_next_active_decision():
    adv, _ = gae(
        col(1.0, 50.0, 2.0),
        col(0.5, 9.0, 1.0),
        terminated=flags(0, 0, 0),
        truncated=flags(0, 0, 0),
        bootstrap_value=col(0.0, 0.0, 0.0),
        last_value=torch.tensor([0.0], dtype=torch.float64),
        gamma=G,
        lam=L,
        active=flags(1, 0, 1),
    )
    # t2: 2 + 0 - 1 = 1; t0 bootstraps from t2's value: 1 + 0.9*1 - 0.5 + 0.72*1 = 2.12
    torch.testing.assert_close(adv, col(2.12, 0.0, 1.0))


def test_lambda_one_gives_discounted_return_minus_value():
    adv, ret = gae(
        col(1.0, 1.0, 1.0),
        col(0.3, 0.2, 0.1),
        terminated=flags(0, 0, 1),
        truncated=flags(0, 0, 0),
        bootstrap_value=col(0.0, 0.0, 0.0),
        last_value=torch.tensor([0.0], dtype=torch.float64),
        gamma=0.5,
        lam=1.0,
    )
    # Monte-Carlo returns with gamma 0.5: 1 + 0.5 + 0.25 = 1.75, 1.5, 1
    torch.testing.assert_close(ret, col(1.75, 1.5, 1.0))


def test_bootstrapped_termination_uses_the_final_value_and_still_cuts_the_episode():
    # t1 terminates (success) with V(final obs) = 4; a new episode runs t2..t3 to the segment end
    reward = col(1.0, 2.0, 0.0, 1.0)
    value = col(0.5, 1.0, 1.5, 2.0)
    inputs = dict(
        terminated=flags(0, 1, 0, 0),
        truncated=flags(0, 0, 0, 0),
        bootstrap_value=col(0.0, 4.0, 0.0, 0.0),
        last_value=torch.tensor([3.0], dtype=torch.float64),
        gamma=G,
        lam=L,
    )
    adv, _ = gae(reward, value, bootstrap_terminations=True, **inputs)
    # t3: 1 + 0.9*3 - 2 = 1.7;     t2: 0 + 0.9*2 - 1.5 = 0.3;  0.3 + 0.72*1.7 = 1.524
    # t1: 2 + 0.9*4 - 1 = 4.6      (V(final obs) bootstrapped; nothing carried across the end)
    # t0: 1 + 0.9*1 - 0.5 = 1.4;   1.4 + 0.72*4.6 = 4.712
    torch.testing.assert_close(adv, col(4.712, 4.6, 1.524, 1.7))
    plain, _ = gae(reward, value, **inputs)  # a true end: target 0 at t1
    # t1: 2 - 1 = 1;  t0: 1.4 + 0.72*1 = 2.12
    torch.testing.assert_close(plain, col(2.12, 1.0, 1.524, 1.7))

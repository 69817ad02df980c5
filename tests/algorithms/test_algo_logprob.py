import pytest
import torch

from rl_post.algorithms.logprob import aggregate_logprob
from rl_post.config import ConfigError

# One decision, H=2 actions of A=3 dims.
LP = torch.tensor([[[-1.0, -2.0, -3.0], [-0.5, -0.5, -1.0]]])


def test_token_level_keeps_every_entry():
    assert torch.equal(aggregate_logprob(LP, "token"), LP)


def test_action_level_sums_dims():
    # -1-2-3 = -6; -0.5-0.5-1 = -2
    torch.testing.assert_close(aggregate_logprob(LP, "action"), torch.tensor([[-6.0, -2.0]]))


def test_chunk_level_sums_actions_and_dims():
    torch.testing.assert_close(aggregate_logprob(LP, "chunk"), torch.tensor([-8.0]))


def test_time_major_leading_dims_are_kept():
    lp = LP.expand(4, 5, 2, 3)  # [T, N, H, A]
    assert aggregate_logprob(lp, "chunk").shape == (4, 5)


def test_unknown_level_lists_choices():
    with pytest.raises(ConfigError, match="token, action, chunk"):
        aggregate_logprob(LP, "step")

"""EnvShard reports a failed vector env through ping, so the rollout worker rebuilds it."""

import pytest
import torch

from rl_post.actors.env_worker import EnvShard


class _DyingEnv:
    device = "cpu"

    def step_chunk(self, actions, k):
        raise EOFError("env process died")


def test_ping_raises_after_the_vector_env_failed():
    shard = EnvShard.__new__(EnvShard)  # no simulator: the failure bookkeeping alone
    shard.env, shard.num_envs, shard._failure = _DyingEnv(), 1, None
    assert shard.ping()
    with pytest.raises(EOFError):
        shard.step_chunk(torch.zeros(1, 2, 1), 2)
    with pytest.raises(RuntimeError, match="env shard failed: EOFError: env process died"):
        shard.ping()

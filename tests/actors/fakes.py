"""Small deterministic stand-ins for an env shard and a policy, to test the runtime's plain classes."""

from __future__ import annotations

import torch

from rl_post.envs.spec import ChunkStepResult, EpisodeStats
from rl_post.models.policy import ActOutput, EvalOutput


class CountingShard:
    """Each sub-env's state is its step counter; reward 1 per step; episodes end by time limit."""

    def __init__(
        self,
        num_envs: int,
        episode_len: int,
        horizon: int = 2,
        action_dim: int = 1,
        fail_after: int = -1,
        terminate: bool = False,
    ):
        self.num_envs = num_envs
        self.episode_len = episode_len
        self.horizon = horizon
        self.action_dim = action_dim
        self.t = torch.zeros(num_envs, dtype=torch.long)
        self.cursor = 0
        self.calls = 0
        self.fail_after = fail_after
        self.returns = torch.zeros(num_envs)
        self.terminate = terminate  # episodes end by termination (task done) instead

    def _obs(self) -> dict:
        return {"state": self.t.float().unsqueeze(1), "instruction": ["count"] * self.num_envs}

    def reset(self, seeds=None) -> dict:
        self.t.zero_()
        self.returns.zero_()
        self.cursor += self.num_envs
        return self._obs()

    def step_chunk(self, actions: torch.Tensor, k: int) -> ChunkStepResult:
        self.calls += 1
        if 0 <= self.fail_after < self.calls:
            raise EOFError("env process died")
        steps = torch.clamp(self.episode_len - self.t, max=k)
        self.t += steps
        reward = steps.float()
        self.returns += reward
        ended = self.t >= self.episode_len
        truncated = ended & ~torch.tensor(self.terminate)
        final = self._obs()
        episodes = [
            EpisodeStats(i, "count", 0, False, False, float(self.returns[i]), int(self.t[i]))
            for i in ended.nonzero().flatten().tolist()
        ]
        self.t[ended] = 0
        self.returns[ended] = 0
        return ChunkStepResult(
            obs=self._obs(),
            final_obs=final,
            reward=reward,
            terminated=ended & torch.tensor(self.terminate),
            truncated=truncated,
            success=torch.zeros(self.num_envs, dtype=torch.bool),
            active=torch.ones(self.num_envs, dtype=torch.bool),
            steps=steps,
            episodes=episodes,
        )

    def seed_cursor(self) -> int:
        return self.cursor

    def set_seed_cursor(self, cursor: int) -> None:
        self.cursor = cursor

    def ping(self) -> bool:
        if 0 <= self.fail_after < self.calls:
            raise EOFError("env process died")
        return True

    def close(self) -> None:
        pass


class BiasPolicy(torch.nn.Module):
    """actions = bias + noise; value = 10 * state; logprob = -1 per element."""

    has_value_head = True

    def __init__(self, horizon: int = 2, action_dim: int = 1):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(action_dim))
        self.horizon = horizon

    def act(self, obs, mode="stochastic", generator=None) -> ActOutput:
        n = obs["state"].shape[0]
        noise = torch.randn(n, self.horizon, self.bias.shape[0], generator=generator)
        actions = self.bias + noise
        return ActOutput(
            actions=actions,
            logprob=-torch.ones_like(actions),
            value=self.value(obs),
            stored={"noise": noise},
        )

    def evaluate(self, obs, stored) -> EvalOutput:
        lp = -torch.ones_like(stored["noise"]) + 0 * self.bias
        return EvalOutput(logprob=lp, entropy=torch.zeros_like(lp), value=self.value(obs))

    def value(self, obs) -> torch.Tensor:
        return 10.0 * obs["state"][:, 0]

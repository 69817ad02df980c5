"""Tiny helpers for the learner tests: a Gaussian chunk policy with a value head, a fixed batch
and the learner/algo config mappings (the learner group YAML itself, the algo keys inline)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from rl_post.models.policy import EvalOutput, StepGaussians

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
STATE_DIM, HORIZON, ACTION_DIM = 5, 2, 3


class TinyGaussianPolicy(nn.Module):
    """state -> Gaussian over an [H, A] action chunk, plus a scalar value head."""

    has_value_head = True
    has_step_gaussians = True

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(STATE_DIM, 16), nn.Tanh())
        self.mean = nn.Linear(16, HORIZON * ACTION_DIM)
        self.log_std = nn.Parameter(torch.full((HORIZON, ACTION_DIM), -0.5))
        self.value_head = nn.Linear(16, 1)

    def evaluate(self, obs: dict, stored: dict) -> EvalOutput:
        assert len(obs["instruction"]) == obs["state"].shape[0]  # lists travel with their rows
        hidden = self.trunk(obs["state"])
        mean = self.mean(hidden).reshape(-1, HORIZON, ACTION_DIM)
        std = self.log_std.exp().expand_as(mean)
        dist = torch.distributions.Normal(mean, std)
        return EvalOutput(
            logprob=dist.log_prob(stored["actions"]),
            entropy=dist.entropy(),
            value=self.value_head(hidden).squeeze(-1),
            gaussians=StepGaussians(
                mean.unsqueeze(2), std.unsqueeze(2), torch.ones(mean.shape[0], 1, dtype=torch.bool)
            ),
        )


def make_batch(size: int = 24, seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    actions = torch.randn(size, HORIZON, ACTION_DIM, generator=gen)
    mask = torch.ones(size)
    mask[::5] = 0.0  # some idle decisions
    return {
        "obs": {
            "state": torch.randn(size, STATE_DIM, generator=gen),
            "instruction": [f"pick cube {i}" for i in range(size)],
        },
        "stored": {"actions": actions},
        "logprob_old": torch.full((size, HORIZON, ACTION_DIM), -1.5)
        + 0.1 * torch.randn(size, HORIZON, ACTION_DIM, generator=gen),
        "advantages": torch.randn(size, generator=gen),
        "returns": torch.randn(size, generator=gen),
        "values_old": torch.zeros(size),
        "mask": mask,
    }


def algo_config(**overrides) -> dict:
    """configs/algo/ppo.yaml with the values these tests rely on pinned."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "algo" / "ppo.yaml"))
    cfg.update(
        update_epochs=2,
        num_minibatches=2,
        lr=3e-3,
        value_lr=1e-2,
        max_grad_norm=1.0,
        entropy_coef=0.01,
        kl_coef=0.0,
        weight_decay=0.0,
        target_kl=None,  # step-size control is tested on its own (test_update_control.py)
        adaptive_lr={**cfg["adaptive_lr"], "enabled": False},
    )
    cfg.update(overrides)
    return cfg


def learner_config(**overrides) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "learner" / "default.yaml"))
    cfg.update(micro_batch_size=4)  # several micro-batches per minibatch on the tiny batch
    cfg.update(overrides)
    return cfg


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().cpu() for p in module.parameters()])


def all_finite(
    stats: dict[str, float], allow_nan: tuple[str, ...] = ("kl", "post_action_change_rms")
) -> bool:
    # post_action_change_rms needs act(), which TinyGaussianPolicy does not have
    return all(math.isfinite(v) for k, v in stats.items() if k not in allow_nan)


def on_policy_batch(policy: nn.Module, obs: dict, advantages: torch.Tensor) -> dict:
    """A learner batch from the policy's own act() samples on `obs` (first pass has ratio 1)."""
    with torch.no_grad():
        act = policy.act(obs)
    size = advantages.shape[0]
    return {
        "obs": obs,
        "stored": act.stored,
        "logprob_old": act.logprob,
        "advantages": advantages,
        "returns": torch.zeros(size),
        "values_old": act.value if act.value is not None else torch.zeros(size),
        "mask": torch.ones(size),
    }

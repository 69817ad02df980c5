"""The protocol every VLA policy implements.

Log-probabilities are returned at the finest grain, [N, H, A] (one entry per action dimension of
every action in the chunk; for flow policies the Gaussian step log-densities of the denoising chain
summed over steps, plus the prior term of x_1). Algorithms aggregate them per token / action /
chunk (see rl_post.algorithms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

ActMode = Literal["deterministic", "stochastic"]


@dataclass
class ActOutput:
    actions: torch.Tensor  # [N, H, A] in env units (unnormalized)
    logprob: torch.Tensor  # [N, H, A] behaviour log-prob (zeros in deterministic mode)
    value: torch.Tensor | None  # [N] when the model has a value head
    # Everything `evaluate` needs to recompute the log-prob exactly, each [N, ...]
    # (flow: "chain" [N, K+1, H, A] and, for one-step SDE, "sde_step" [N]; tokens: "tokens" [N, H, A]).
    stored: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class EvalOutput:
    logprob: torch.Tensor  # [N, H, A], differentiable
    entropy: torch.Tensor  # [N, H, A] exact or estimated, differentiable
    value: torch.Tensor | None  # [N]


class Policy(Protocol):
    has_value_head: bool

    def act(self, obs: dict[str, object], mode: ActMode = "stochastic") -> ActOutput: ...

    def evaluate(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> EvalOutput: ...

    def value(self, obs: dict[str, object]) -> torch.Tensor: ...

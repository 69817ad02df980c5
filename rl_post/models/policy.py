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
    logprob: torch.Tensor  # [N, H, A] behaviour log-prob (zeros in deterministic mode); H is
    # execute_steps under model.likelihood_actions=executed
    value: torch.Tensor | None  # [N] when the model has a value head
    # Everything `evaluate` needs to recompute the log-prob exactly, each [N, ...]
    # (flow: "chain" [N, K+1, H, A] and, for one-step SDE, "sde_step" [N]; tokens: "tokens" [N, H, A]).
    stored: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class StepGaussians:
    """The Gaussian densities inside a Gaussian policy's log-prob, for the learner's measurement
    of how an update moved their means and stds (rl_post.algorithms.update_size.kl_part_sums).

    mean/std [N, H, S, A]: S Gaussian steps per action entry (a flow chain's K denoising steps; 1
    for a Gaussian MLP), H as in EvalOutput.logprob; active [N, S] bool: the steps whose densities
    enter the log-prob (the others were deterministic)."""

    mean: torch.Tensor
    std: torch.Tensor
    active: torch.Tensor


@dataclass
class EvalOutput:
    logprob: torch.Tensor  # [N, H, A], differentiable
    entropy: torch.Tensor  # [N, H, A] exact or estimated, differentiable
    value: torch.Tensor | None  # [N]
    # Gaussian policies (has_step_gaussians = True) also return the densities behind logprob
    gaussians: StepGaussians | None = None


class Policy(Protocol):
    has_value_head: bool

    # `generator` (optional) drives every random draw of a stochastic act, so a seeded generator
    # reproduces the same actions; None uses torch's global RNG. It must live on the policy's
    # device (torch.Generator(device=...)).
    def act(
        self,
        obs: dict[str, object],
        mode: ActMode = "stochastic",
        generator: torch.Generator | None = None,
    ) -> ActOutput: ...

    def evaluate(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> EvalOutput: ...

    def value(self, obs: dict[str, object]) -> torch.Tensor: ...


class TrainablePolicy(Policy, Protocol):
    """What the SFT trainer and the RL learner use beyond acting (implemented by every model)."""

    kind: str  # "flow" | "token" | "gaussian" | "smolvla" | "pi0"
    action_horizon: int  # H
    execute_steps: int  # k <= H chunk actions the env executes

    def bc_loss(
        self,
        obs: dict[str, object],
        action_chunk: torch.Tensor,  # [N, H, A] env units
        mask: torch.Tensor | None = None,  # [N, H] or [N, H, A], True/1 where the action is real
    ) -> tuple[torch.Tensor, dict[str, float]]: ...

    # {"policy": [...], "value": [...]}: the value head gets its own learning rate.
    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]: ...

    def set_normalization(self, stats: dict[str, torch.Tensor]) -> None: ...

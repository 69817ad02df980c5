"""Gaussian MLP policy on state observations (CleanRL / ManiSkill3 PPO structure).

The sanity baseline that separates the RL machinery from the policy class: an actor MLP maps the
(normalized) state to the mean of a diagonal Gaussian over an [H, A] action chunk (H = 1 by
default) in normalized action units; the log-std is a learned parameter that does not depend on
the state. No tanh squashing: the sample is clipped to the env bounds only when it is executed,
and the log-prob is that of the unclipped sample (as ManiSkill's ppo.py does), so it is exact.
The critic is a separate MLP of the same widths on the same state (no shared trunk), named
`value_head` so the learner gives it its own parameter group and an SFT checkpoint without one
can seed PPO. Orthogonal init: gain sqrt(2) for hidden layers, `actor_output_gain` (small) for the
mean layer so the initial mean is ~0, gain 1 for the value layer; zero biases.

Observation normalization: the state is standardized with the Normalizer's mean/std, which SFT
sets from demonstrations and which are the identity (raw observations, as ManiSkill's PPO uses)
for a policy trained from scratch. Nothing is updated during RL: a running normalizer would change
the policy between acting and learning and would have to travel with every weight push.
Language and camera inputs are not used; the policy refuses an ObsSpec with cameras.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.base_policy import VALUE_HEAD_PREFIX, check_act_mode, masked_mean
from rl_post.models.config import ModelConfig
from rl_post.models.flow_math import gaussian_entropy, gaussian_log_density
from rl_post.models.normalization import Normalizer
from rl_post.models.policy import ActMode, ActOutput, EvalOutput, StepGaussians

HIDDEN_GAIN = math.sqrt(2.0)  # orthogonal init gain of hidden layers (CleanRL's layer_init)
VALUE_OUTPUT_GAIN = 1.0  # orthogonal init gain of the critic's output layer (CleanRL)
SAMPLE_KEY = "sample"  # stored: the unclipped Gaussian sample, normalized units [N, H, A]
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def orthogonal_linear(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def build_mlp(
    in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str, output_gain: float
) -> nn.Sequential:
    """Linear-activation stack with orthogonal init; the output layer is linear."""
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [
            orthogonal_linear(width, int(size), HIDDEN_GAIN),
            ACTIVATION_LAYERS[activation](),
        ]
        width = int(size)
    layers.append(orthogonal_linear(width, out_dim, output_gain))
    return nn.Sequential(*layers)


class GaussianMLPPolicy(nn.Module):
    kind = "gaussian"
    has_step_gaussians = True

    def __init__(self, cfg: ModelConfig, spec: ObsSpec) -> None:
        super().__init__()
        if spec.has_rgb:
            raise ConfigError(
                f"model '{cfg.name}' (kind gaussian) uses state observations only, but the env "
                f"gives cameras {list(spec.cameras)}; set env.obs_mode=state"
            )
        self.config = cfg
        self.spec = spec
        self.action_horizon = cfg.action_horizon
        self.execute_steps = cfg.execute_steps
        self.action_dim = spec.action_dim
        self.normalizer = Normalizer(spec)
        hidden = tuple(int(w) for w in cfg.hidden_sizes)
        chunk = cfg.action_horizon * spec.action_dim
        self.actor = build_mlp(spec.state_dim, hidden, chunk, cfg.activation, cfg.actor_output_gain)
        self.log_std = nn.Parameter(
            torch.full((cfg.action_horizon, spec.action_dim), float(cfg.init_log_std))
        )
        self.value_head = (
            build_mlp(spec.state_dim, hidden, 1, cfg.activation, VALUE_OUTPUT_GAIN)
            if cfg.value_head
            else None
        )

    @property
    def has_value_head(self) -> bool:
        return self.value_head is not None

    @property
    def device(self) -> torch.device:
        return self.normalizer.state_mean.device

    # ---- forward pieces ---------------------------------------------------------------------
    def _state(self, obs: dict[str, object]) -> torch.Tensor:
        if "state" not in obs:
            raise ConfigError("obs has no 'state' entry; every env obs dict must carry 'state'")
        state = torch.as_tensor(obs["state"]).to(self.device, torch.float32)
        if state.dim() != 2 or state.shape[-1] != self.spec.state_dim:
            raise ConfigError(
                f"obs['state'] has shape {tuple(state.shape)} but the policy expects [N, "
                f"{self.spec.state_dim}]; build the policy from this env's ObsSpec"
            )
        return self.normalizer.normalize_state(state)

    def _mean(self, state: torch.Tensor) -> torch.Tensor:
        """Gaussian mean [N, H, A] in normalized action units."""
        return self.actor(state).view(-1, self.action_horizon, self.action_dim)

    def _value_from(self, state: torch.Tensor) -> torch.Tensor | None:
        return None if self.value_head is None else self.value_head(state).squeeze(-1)

    def _likelihood_slice(self, per_action: torch.Tensor) -> torch.Tensor:
        """[N, H, A] -> the first execute_steps actions under likelihood_actions=executed (the
        chunk actions are independent given the state, so this is the exact executed likelihood)."""
        if self.config.likelihood_actions == "executed":
            return per_action[:, : self.execute_steps]
        return per_action

    def _to_env_units(self, normalized: torch.Tensor) -> torch.Tensor:
        return self.normalizer.clip_to_env(self.normalizer.unnormalize_action(normalized))

    # ---- Policy protocol ---------------------------------------------------------------------
    @torch.no_grad()
    def act(
        self,
        obs: dict[str, object],
        mode: ActMode = "stochastic",
        generator: torch.Generator | None = None,
    ) -> ActOutput:
        check_act_mode(mode)
        state = self._state(obs)
        mean = self._mean(state)
        std = self.log_std.exp().expand_as(mean)
        if mode == "deterministic":
            sample = mean
            logprob = torch.zeros_like(mean)
        else:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            sample = mean + std * noise
            logprob = gaussian_log_density(sample, mean, std)
        return ActOutput(
            actions=self._to_env_units(sample),
            logprob=self._likelihood_slice(logprob),
            value=self._value_from(state),
            stored={SAMPLE_KEY: sample},
        )

    def evaluate(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> EvalOutput:
        if SAMPLE_KEY not in stored:
            raise ConfigError(
                f"stored data has no '{SAMPLE_KEY}'; pass the `stored` dict that act() returned "
                f"(keys present: {sorted(stored)})"
            )
        sample = stored[SAMPLE_KEY].to(self.device).float()
        expected = (self.action_horizon, self.action_dim)
        if sample.dim() != 3 or tuple(sample.shape[1:]) != expected:
            raise ConfigError(
                f"stored samples have shape {tuple(sample.shape)}, expected [N, {expected[0]}, "
                f"{expected[1]}]; the rollout used a different action_horizon than the learner"
            )
        state = self._state(obs)
        mean = self._mean(state)
        std = self.log_std.exp().expand_as(mean)
        return EvalOutput(
            logprob=self._likelihood_slice(gaussian_log_density(sample, mean, std)),
            entropy=self._likelihood_slice(gaussian_entropy(std)),
            value=self._value_from(state),
            gaussians=StepGaussians(  # one Gaussian step per action entry
                self._likelihood_slice(mean).unsqueeze(2),
                self._likelihood_slice(std).unsqueeze(2),
                torch.ones(mean.shape[0], 1, dtype=torch.bool, device=mean.device),
            ),
        )

    def value(self, obs: dict[str, object]) -> torch.Tensor:
        if self.value_head is None:
            raise ConfigError(
                f"model '{self.config.name}' has no value head; set model.value_head=true for "
                "PPO (GRPO/RLOO need no critic)"
            )
        return self.value_head(self._state(obs)).squeeze(-1)

    # ---- TrainablePolicy ---------------------------------------------------------------------
    def bc_loss(
        self,
        obs: dict[str, object],
        action_chunk: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Behaviour cloning in normalized action units.

        nll (default): Gaussian negative log-likelihood of the demo actions, the same density RL
        then optimizes; the mean fits the demos (each dim weighted by 1/std^2) and the log-std
        converges to the residual spread, so the SFT policy's stochastic mode is calibrated.
        mse: squared error of the mean only; the log-std keeps its initial value.
        """
        expected = (self.action_horizon, self.action_dim)
        if action_chunk.dim() != 3 or tuple(action_chunk.shape[1:]) != expected:
            raise ConfigError(
                f"action_chunk has shape {tuple(action_chunk.shape)}; expected [N, "
                f"{expected[0]}, {expected[1]}] (N, action_horizon, action_dim)"
            )
        target = self.normalizer.normalize_action(action_chunk.to(self.device).float())
        mean = self._mean(self._state(obs))
        squared = (mean - target) ** 2
        mse = masked_mean(squared, mask)
        if self.config.bc_objective == "mse":
            loss = mse
        else:
            std = self.log_std.exp().expand_as(mean)
            loss = masked_mean(-gaussian_log_density(target, mean, std), mask)
        return loss, {
            "bc_loss": float(loss.detach()),
            "bc_mse": float(mse.detach()),
            "policy_std": float(self.log_std.detach().exp().mean()),
        }

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {"policy": [], "value": []}
        for name, param in self.named_parameters():
            groups["value" if name.startswith(VALUE_HEAD_PREFIX) else "policy"].append(param)
        return groups

    def set_normalization(self, stats: dict[str, torch.Tensor]) -> None:
        self.normalizer.set_stats(stats)

    def normalization_stats(self) -> dict[str, torch.Tensor]:
        return self.normalizer.stats()

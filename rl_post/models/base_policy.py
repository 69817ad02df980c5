"""What both policy families share: config, normalization, backbone, value head, param groups."""

from __future__ import annotations

import torch
from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.backbone import Backbone, BackboneOutput, StateValueHead, ValueHead
from rl_post.models.config import ModelConfig
from rl_post.models.normalization import Normalizer

VALUE_HEAD_PREFIX = "value_head."


def policy_state_keep(cfg: ModelConfig, state_dim: int) -> torch.Tensor:
    """float [state_dim]: 0 on the dims of cfg.policy_state_drop, 1 elsewhere."""
    keep = torch.ones(state_dim)
    for start, stop in cfg.policy_state_drop:
        if stop > state_dim:
            raise ConfigError(
                f"model.policy_state_drop range [{start}, {stop}] runs past this env's state "
                f"({state_dim} values); use ranges inside [0, {state_dim}]"
            )
        keep[start:stop] = 0.0
    return keep


class VLAPolicyBase(nn.Module):
    kind: str

    def __init__(self, cfg: ModelConfig, spec: ObsSpec) -> None:
        super().__init__()
        self.config = cfg
        self.spec = spec
        self.action_horizon = cfg.action_horizon
        self.execute_steps = cfg.execute_steps
        self.action_dim = spec.action_dim
        self.normalizer = Normalizer(spec)
        # not persistent: rebuilt from the config, so checkpoints keep their tensor keys
        self.register_buffer(
            "policy_state_keep", policy_state_keep(cfg, spec.state_dim), persistent=False
        )
        self.backbone = Backbone(cfg, spec)
        self.value_head: nn.Module | None = None
        if cfg.value_head and cfg.value_input == "state":
            self.value_head = StateValueHead(spec.state_dim, cfg.value_hidden, cfg.value_layers)
        elif cfg.value_head:
            self.value_head = ValueHead(cfg.d_model, cfg.value_hidden, cfg.detach_value_head)

    @property
    def has_value_head(self) -> bool:
        return self.value_head is not None

    @property
    def device(self) -> torch.device:
        return self.normalizer.state_mean.device

    def encode(self, obs: dict[str, object], suffix: torch.Tensor | None = None) -> BackboneOutput:
        """Backbone pass on obs with the state moved to this device and normalized."""
        if "state" not in obs:
            raise ConfigError("obs has no 'state' entry; every env obs dict must carry 'state'")
        state = torch.as_tensor(obs["state"]).to(self.device, torch.float32)
        normalized = self.normalizer.normalize_state(state)
        out = self.backbone(dict(obs, state=normalized * self.policy_state_keep), suffix)
        out.state = normalized  # the state critic sees every dimension
        return out

    def _value_from(self, out: BackboneOutput) -> torch.Tensor | None:
        if self.value_head is None:
            return None
        if self.config.value_input == "state":
            assert out.state is not None
            return self.value_head(out.state)
        return self.value_head(out.pooled)

    def value(self, obs: dict[str, object]) -> torch.Tensor:
        if self.value_head is None:
            raise ConfigError(
                f"model '{self.config.name}' has no value head; set model.value_head=true for "
                "PPO (GRPO/RLOO need no critic)"
            )
        return self._value_from(self.encode(obs))  # type: ignore[return-value]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {"policy": [], "value": []}
        for name, param in self.named_parameters():
            groups["value" if name.startswith(VALUE_HEAD_PREFIX) else "policy"].append(param)
        return groups

    def set_normalization(self, stats: dict[str, torch.Tensor]) -> None:
        self.normalizer.set_stats(stats)

    def normalization_stats(self) -> dict[str, torch.Tensor]:
        return self.normalizer.stats()

    def _likelihood_slice(self, per_action: torch.Tensor) -> torch.Tensor:
        """[N, H, ...] -> the chunk actions that carry the likelihood ([N, k, ...] or unchanged).

        For the token policy the executed slice is the exact log-likelihood of what the env ran
        (tokens are independent given the observation); for the flow policy it drops the density
        terms of unexecuted actions, which influence executed ones only through attention.
        """
        if self.config.likelihood_actions == "executed":
            return per_action[:, : self.execute_steps]
        return per_action

    def _to_env_units(self, normalized: torch.Tensor) -> torch.Tensor:
        return self.normalizer.clip_to_env(self.normalizer.unnormalize_action(normalized))

    def _check_action_chunk(self, action_chunk: torch.Tensor) -> torch.Tensor:
        expected = (self.action_horizon, self.action_dim)
        if action_chunk.dim() != 3 or tuple(action_chunk.shape[1:]) != expected:
            raise ConfigError(
                f"action_chunk has shape {tuple(action_chunk.shape)}; expected [N, "
                f"{expected[0]}, {expected[1]}] (N, action_horizon, action_dim)"
            )
        return action_chunk.to(self.device).float()


def check_act_mode(mode: str) -> None:
    if mode not in ("stochastic", "deterministic"):
        raise ConfigError(f"act mode '{mode}' is not valid; use stochastic or deterministic")


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of values [N, H, A] over entries where mask ([N, H] or [N, H, A]) is set."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.device, values.dtype)
    if weights.dim() == values.dim() - 1:
        weights = weights.unsqueeze(-1)
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)

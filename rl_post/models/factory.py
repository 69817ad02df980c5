"""build_policy: model config (configs/model/*.yaml) + env ObsSpec -> a Policy module."""

from __future__ import annotations

from typing import Any

from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.base_policy import VLAPolicyBase
from rl_post.models.config import parse_model_config
from rl_post.models.flow_policy import FlowMatchingPolicy
from rl_post.models.mlp_policy import GaussianMLPPolicy
from rl_post.models.token_policy import TokenPolicy
from rl_post.models.vla.config import VLA_KINDS

AnyPolicy = VLAPolicyBase | GaussianMLPPolicy
POLICY_CLASSES: dict[str, type[AnyPolicy]] = {
    "flow": FlowMatchingPolicy,
    "token": TokenPolicy,
    "gaussian": GaussianMLPPolicy,
}


def build_policy(model_cfg: Any, spec: ObsSpec) -> Any:
    """Randomly initialised policy (seed torch beforehand for a reproducible init).

    model_cfg: the `model` DictConfig, a plain dict or a ModelConfig. The policy implements
    rl_post.models.policy.TrainablePolicy and lives on the CPU; move it with `.to(device)`.
    """
    cfg = parse_model_config(model_cfg)
    if cfg.kind in VLA_KINDS:  # SmolVLA / pi0 on transformers (imported only when used)
        from rl_post.models.vla import build_vla_policy

        policy = build_vla_policy(cfg, spec)
    else:
        policy = POLICY_CLASSES[cfg.kind](cfg, spec)
    freeze_modules(policy, cfg.frozen_modules)
    return policy


def freeze_modules(policy: nn.Module, names: tuple[str, ...]) -> None:
    """requires_grad=False on the named top-level submodules (model.frozen_modules)."""
    children = dict(policy.named_children())
    trainable = [n for n, m in children.items() if any(True for _ in m.parameters())]
    for name in names:
        if name not in trainable:
            raise ConfigError(
                f"model.frozen_modules names '{name}', which this {type(policy).__name__} does "
                f"not have; choose from {', '.join(trainable)}"
            )
        children[name].requires_grad_(False)

"""Real VLA policy families on transformers: SmolVLA (model=smolvla) and pi0 (model=pi0), in
LeRobot 0.4.4's module layout, loading and saving LeRobot `pretrained_model/` folders
(rl_post.models.vla.lerobot_io). transformers is imported only when one is built.
"""

from __future__ import annotations

from rl_post.envs.spec import ObsSpec
from rl_post.models.vla.config import VLA_KINDS, VLAModelConfig, parse_vla_config


def policy_class(kind: str) -> type:
    if kind == "smolvla":
        from rl_post.models.vla.smolvla import SmolVLAPolicy

        return SmolVLAPolicy
    if kind == "pi0":
        from rl_post.models.vla.pi0 import PI0Policy

        return PI0Policy
    raise ValueError(f"unknown VLA kind '{kind}'; choose one of {', '.join(VLA_KINDS)}")


def build_vla_policy(cfg: VLAModelConfig, spec: ObsSpec, apply_training: bool = True):
    """Randomly initialised VLA policy; apply_training=False leaves every weight trainable and no
    LoRA injected (the LeRobot loader fills the plain weights first, then applies model.train)."""
    from rl_post.models.vla.training import apply_training_mode

    policy = policy_class(cfg.kind)(cfg, spec)
    if apply_training:
        apply_training_mode(policy)
    return policy


__all__ = ["VLA_KINDS", "VLAModelConfig", "build_vla_policy", "parse_vla_config", "policy_class"]

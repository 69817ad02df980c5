"""VLA policies for RL post-training: flow matching (pi0-style) and discrete tokens (OpenVLA-OFT),
plus the Gaussian MLP state-only baseline (CleanRL / ManiSkill PPO structure).

Entry points: build_policy(model_cfg, spec), save_policy / load_policy /
check_checkpoint_compatible, and the protocol in rl_post.models.policy.
"""

from rl_post.models.checkpoint import (
    check_checkpoint_compatible,
    load_policy,
    read_checkpoint,
    save_policy,
)
from rl_post.models.config import ModelConfig, parse_model_config
from rl_post.models.factory import build_policy
from rl_post.models.normalization import compute_normalization_stats
from rl_post.models.policy import ActOutput, EvalOutput, Policy, TrainablePolicy

__all__ = [
    "ActOutput",
    "EvalOutput",
    "ModelConfig",
    "Policy",
    "TrainablePolicy",
    "build_policy",
    "check_checkpoint_compatible",
    "compute_normalization_stats",
    "load_policy",
    "parse_model_config",
    "read_checkpoint",
    "save_policy",
]

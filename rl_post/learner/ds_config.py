"""Translate the learner + algo config groups into a DeepSpeed config dict (pure, testable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from rl_post.config import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
ZERO_STAGES = (0, 1, 2, 3)
# DeepSpeed prints throughput every `steps_per_print` optimizer steps; the learner reports its
# own stats, so push that far beyond any run length.
NEVER_PRINT_STEPS = 2**31 - 1


def require(cfg: Mapping[str, Any], key: str, section: str) -> Any:
    if key not in cfg or cfg[key] is None:
        raise ConfigError(
            f"missing config key '{section}.{key}'; set it in configs/{section}/*.yaml"
        )
    return cfg[key]


def resolve_precision(requested: str, on_gpu: bool) -> str:
    """`auto` trains in bf16 on a GPU and fp32 on CPU (CPU bf16 matmuls are slow, not faster)."""
    if requested not in PRECISIONS:
        raise ConfigError(
            f"learner.precision '{requested}' is not supported; valid choices: {', '.join(PRECISIONS)}"
        )
    if requested == "auto":
        return "bf16" if on_gpu else "fp32"
    return requested


def build_deepspeed_config(
    learner_cfg: Mapping[str, Any],
    algo_cfg: Mapping[str, Any],
    *,
    precision: str,
    world_size: int,
    micro_size: int,
    grad_accum: int,
) -> dict[str, Any]:
    stage = int(require(learner_cfg, "zero_stage", "learner"))
    if stage not in ZERO_STAGES:
        raise ConfigError(f"learner.zero_stage {stage} is not valid; valid choices: 0, 1, 2, 3")
    max_grad_norm = algo_cfg.get("max_grad_norm")
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_size * grad_accum * world_size,
        # 0 disables clipping in DeepSpeed
        "gradient_clipping": float(max_grad_norm) if max_grad_norm else 0.0,
        "zero_optimization": {"stage": stage},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": float(require(algo_cfg, "lr", "algo")),
                "betas": [float(b) for b in require(learner_cfg, "adam_betas", "learner")],
                "eps": float(require(learner_cfg, "adam_eps", "learner")),
                "weight_decay": float(algo_cfg.get("weight_decay") or 0.0),
                # torch.optim.AdamW needs no compiled DeepSpeed ops (FusedAdam/CPUAdam do)
                "torch_adam": bool(require(learner_cfg, "torch_adam", "learner")),
            },
        },
        "steps_per_print": NEVER_PRINT_STEPS,
        "wall_clock_breakdown": False,
    }
    if precision == "bf16":
        # Autocast keeps fp32 master weights and runs matmuls in bf16 while log/exp stay fp32:
        # PPO ratios exp(logp_new - logp_old) are too coarse if the log-probs themselves are bf16.
        config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    return config


def autocast_dtype(precision: str) -> torch.dtype | None:
    return torch.bfloat16 if precision == "bf16" else None

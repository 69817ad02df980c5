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


def zero_stage(learner_cfg: Mapping[str, Any]) -> int:
    stage = int(require(learner_cfg, "zero_stage", "learner"))
    if stage not in ZERO_STAGES:
        raise ConfigError(f"learner.zero_stage {stage} is not valid; valid choices: 0, 1, 2, 3")
    return stage


def resolve_precision(requested: str, on_gpu: bool) -> str:
    """`auto` trains in bf16 on a GPU and fp32 on CPU (CPU bf16 matmuls are slow, not faster)."""
    if requested not in PRECISIONS:
        raise ConfigError(
            f"learner.precision '{requested}' is not supported; valid choices: {', '.join(PRECISIONS)}"
        )
    if requested == "auto":
        return "bf16" if on_gpu else "fp32"
    return requested


def optimizer_settings(
    learner_cfg: Mapping[str, Any], algo_cfg: Mapping[str, Any], on_gpu: bool
) -> dict[str, Any]:
    """AdamW hyper-parameters shared by both parameter groups (each group has its own lr, clip
    and, optionally, eps). `learner.adam_fused: auto` uses torch's fused CUDA kernel on a GPU and
    the multi-tensor (foreach) CPU path otherwise; neither needs DeepSpeed's compiled ops."""
    fused = learner_cfg.get("adam_fused", "auto")
    if fused not in ("auto", True, False):
        raise ConfigError(f"learner.adam_fused must be auto, true or false; got {fused!r}")
    if fused is True and not on_gpu:
        raise ConfigError("learner.adam_fused=true needs a CUDA GPU; use auto or false on CPU")
    betas = [float(b) for b in require(learner_cfg, "adam_betas", "learner")]
    if len(betas) != 2:
        raise ConfigError(f"learner.adam_betas must be two numbers, e.g. [0.9, 0.999]; got {betas}")
    return {
        "lr": float(require(algo_cfg, "lr", "algo")),
        "betas": (betas[0], betas[1]),
        "eps": float(require(learner_cfg, "adam_eps", "learner")),
        "weight_decay": float(algo_cfg.get("weight_decay") or 0.0),
        "fused": on_gpu if fused == "auto" else bool(fused),
    }


def build_deepspeed_config(
    learner_cfg: Mapping[str, Any],
    *,
    precision: str,
    world_size: int,
    micro_size: int,
    grad_accum: int,
) -> dict[str, Any]:
    stage = zero_stage(learner_cfg)
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_size * grad_accum * world_size,
        # Clipping happens per parameter group inside the learner's optimizer
        # (rl_post/learner/optimizer.py); DeepSpeed's global clip would couple policy and critic.
        "gradient_clipping": 0.0,
        "zero_optimization": {"stage": stage},
        # The optimizer is the learner's own AdamW subclass, which DeepSpeed has not validated
        # for ZeRO; it only relies on the torch.optim interface.
        "zero_allow_untested_optimizer": True,
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

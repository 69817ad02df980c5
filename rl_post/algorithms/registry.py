"""Algorithms selectable by name (`algo=ppo|grpo|rloo`) and validation of the algo config.

The config is the `algo` node of the composed training config (configs/algo/<name>.yaml), or any
mapping with the same keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rl_post.algorithms.logprob import LOGPROB_LEVELS
from rl_post.algorithms.losses import KL_ESTIMATORS, LOSS_AGGS
from rl_post.config import ConfigError

ADVANTAGE_KINDS: tuple[str, ...] = ("gae", "grpo", "rloo")
GROUP_RETURNS: tuple[str, ...] = ("episode", "reward_to_go")
# What algo.target_kl and algo.adaptive_lr.target_kl measure: KL(old || new) per whole decision
# (action chunk / denoising chain) or per token (one action dimension of one step).
KL_GRAINS: tuple[str, ...] = ("decision", "token")
GROUP_ADVANTAGES: frozenset[str] = frozenset({"grpo", "rloo"})


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    advantage: str  # one of ADVANTAGE_KINDS
    uses_critic: bool  # needs a value head and the value loss
    summary: str

    @property
    def uses_groups(self) -> bool:
        """Compares trajectories of G sub-envs that share an initial state (needs whole,
        synchronized episodes in each segment)."""
        return self.advantage in GROUP_ADVANTAGES


ALGORITHMS: dict[str, AlgoSpec] = {}


def register_algorithm(spec: AlgoSpec) -> AlgoSpec:
    if spec.advantage not in ADVANTAGE_KINDS:
        raise ConfigError(
            f"algorithm '{spec.name}' has unknown advantage '{spec.advantage}'; valid choices: "
            f"{', '.join(ADVANTAGE_KINDS)}"
        )
    ALGORITHMS[spec.name] = spec
    return spec


register_algorithm(AlgoSpec("ppo", "gae", True, "clipped PPO with a critic and GAE"))
register_algorithm(AlgoSpec("grpo", "grpo", False, "group-normalized returns, no critic"))
register_algorithm(AlgoSpec("rloo", "rloo", False, "leave-one-out group baseline, no critic"))

REQUIRED_KEYS: tuple[str, ...] = (
    "name",
    "advantage",
    "reward_scale",
    "gamma",
    "lam",
    "bootstrap_terminations",
    "normalize_advantages",
    "group_std_normalize",
    "group_return",
    "adv_eps",
    "dynamic_sampling",
    "clip_eps_low",
    "clip_eps_high",
    "dual_clip",
    "logprob_level",
    "loss_agg",
    "value_coef",
    "value_clip",
    "huber_delta",
    "entropy_coef",
    "kl_coef",
    "kl_estimator",
    "update_epochs",
    "num_minibatches",
    "lr",
    "value_lr",
    "max_grad_norm",
    "value_max_grad_norm",
    "target_kl",
    "kl_grain",
    "adaptive_lr",
    "weight_decay",
    "group_size",
)
# Keys every configs/algo/*.yaml defines but a run's recorded config may lack (it predates them):
# resume= replays that recorded config, so these read as their default (null: off) when absent.
OPTIONAL_KEYS: tuple[str, ...] = ("noise_lr",)
DYNAMIC_SAMPLING_KEYS: tuple[str, ...] = ("enabled", "min_success_rate", "max_success_rate")
ADAPTIVE_LR_KEYS: tuple[str, ...] = ("enabled", "target_kl", "factor", "min_lr", "max_lr")
# What the adaptive lr steers on: the whole post-update KL, or (Gaussian policies) only the part
# the means' move makes, so a noise head trained at algo.noise_lr does not take the mean's budget.
# Optional in a recorded config (it predates the key): absent reads as "total".
KL_PARTS: tuple[str, ...] = ("total", "mean")
ADAPTIVE_LR_OPTIONAL_KEYS: tuple[str, ...] = ("kl_part",)


def get_algo_spec(name: str) -> AlgoSpec:
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algo '{name}'; valid choices: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name]


def uses_critic(cfg: Mapping[str, Any]) -> bool:
    """Whether this algo config trains a value head (GAE advantages need one)."""
    return get_algo_spec(cfg["name"]).uses_critic


def _choice(cfg: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> None:
    if cfg[key] not in choices:
        raise ConfigError(f"unknown algo.{key} '{cfg[key]}'; valid choices: {', '.join(choices)}")


def _in_range(cfg: Mapping[str, Any], key: str, low: float, high: float, what: str) -> None:
    value = cfg[key]
    if value is None or not low <= float(value) <= high:
        raise ConfigError(f"algo.{key} must be {what}; got {value}")


def _positive_or_null(cfg: Mapping[str, Any], key: str) -> None:
    value = cfg[key]
    if value is not None and float(value) <= 0:
        raise ConfigError(f"algo.{key} must be null (off) or > 0; got {value}")


def _validate_adaptive_lr(cfg: Mapping[str, Any]) -> None:
    adaptive = cfg["adaptive_lr"]
    missing = [k for k in ADAPTIVE_LR_KEYS if k not in adaptive]
    if missing:
        raise ConfigError(
            f"algo.adaptive_lr lacks keys {missing}; it needs {list(ADAPTIVE_LR_KEYS)}"
        )
    part = adaptive.get("kl_part", "total")
    if part not in KL_PARTS:
        raise ConfigError(
            f"unknown algo.adaptive_lr.kl_part '{part}'; valid choices: {', '.join(KL_PARTS)}"
        )
    valid = (*ADAPTIVE_LR_KEYS, *ADAPTIVE_LR_OPTIONAL_KEYS)
    unknown = sorted(set(adaptive) - set(valid))
    if unknown:
        raise ConfigError(
            f"algo.adaptive_lr has unknown keys {unknown}; valid keys: {', '.join(valid)}"
        )
    if not adaptive["enabled"]:
        return
    target, factor = adaptive["target_kl"], adaptive["factor"]
    low, high = adaptive["min_lr"], adaptive["max_lr"]
    if target is None or float(target) <= 0:
        raise ConfigError(f"algo.adaptive_lr.target_kl must be > 0 (KL per decision); got {target}")
    if factor is None or float(factor) <= 1.0:
        raise ConfigError(f"algo.adaptive_lr.factor must be > 1 (e.g. 1.5); got {factor}")
    if not 0.0 < float(low) <= float(cfg["lr"]) <= float(high):
        raise ConfigError(
            "algo.adaptive_lr needs 0 < min_lr <= algo.lr <= max_lr; got "
            f"min_lr={low}, lr={cfg['lr']}, max_lr={high}"
        )


def validate_algo_cfg(cfg: Mapping[str, Any]) -> AlgoSpec:
    """Check an algo config; raise ConfigError naming the problem and the valid choices."""
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ConfigError(
            f"algo config lacks keys {missing}; every configs/algo/*.yaml defines the full set "
            f"({', '.join(REQUIRED_KEYS)})"
        )
    spec = get_algo_spec(cfg["name"])
    _choice(cfg, "advantage", ADVANTAGE_KINDS)
    if cfg["advantage"] != spec.advantage:
        raise ConfigError(
            f"algo '{spec.name}' uses advantage '{spec.advantage}', not '{cfg['advantage']}'; "
            f"choose the algorithm instead (algo=" + "|".join(sorted(ALGORITHMS)) + ")"
        )
    _choice(cfg, "logprob_level", LOGPROB_LEVELS)
    _choice(cfg, "group_return", GROUP_RETURNS)
    _choice(cfg, "kl_grain", KL_GRAINS)
    if not isinstance(cfg["bootstrap_terminations"], bool):
        raise ConfigError(
            f"algo.bootstrap_terminations must be true or false, got {cfg['bootstrap_terminations']!r}"
        )
    if cfg["bootstrap_terminations"] and cfg["advantage"] != "gae":
        raise ConfigError(
            f"algo.bootstrap_terminations=true needs a critic (algo=ppo); {spec.name} scores whole "
            "episodes and has no value to bootstrap"
        )
    _choice(cfg, "loss_agg", LOSS_AGGS)
    _choice(cfg, "kl_estimator", KL_ESTIMATORS)
    _in_range(cfg, "gamma", 0.0, 1.0, "in [0, 1]")
    _in_range(cfg, "lam", 0.0, 1.0, "in [0, 1]")
    _in_range(cfg, "clip_eps_low", 0.0, 1.0, "in [0, 1]")
    _in_range(cfg, "clip_eps_high", 0.0, float("inf"), ">= 0")
    for key in ("value_coef", "entropy_coef", "kl_coef", "weight_decay"):
        _in_range(cfg, key, 0.0, float("inf"), ">= 0")
    for key in ("reward_scale", "adv_eps", "lr", "value_lr", "max_grad_norm"):
        _in_range(cfg, key, 1e-30, float("inf"), "> 0")
    for key in ("value_clip", "huber_delta", "value_max_grad_norm", "target_kl"):
        _positive_or_null(cfg, key)
    for key in OPTIONAL_KEYS:
        if key in cfg:
            _positive_or_null(cfg, key)
    _validate_adaptive_lr(cfg)
    if cfg["dual_clip"] is not None and float(cfg["dual_clip"]) <= 1.0:
        raise ConfigError(
            f"algo.dual_clip must be null (off) or > 1 (e.g. 3.0); got {cfg['dual_clip']}"
        )
    for key in ("update_epochs", "num_minibatches", "group_size"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"algo.{key} must be an integer >= 1; got {cfg[key]}")
    if spec.advantage in GROUP_ADVANTAGES and int(cfg["group_size"]) < 2:
        raise ConfigError(
            f"algo '{spec.name}' compares trajectories within a group: algo.group_size must be "
            f">= 2 (e.g. 8); got {cfg['group_size']}"
        )
    sampling = cfg["dynamic_sampling"]
    missing = [k for k in DYNAMIC_SAMPLING_KEYS if k not in sampling]
    if missing:
        raise ConfigError(f"algo.dynamic_sampling lacks keys {missing}")
    low, high = float(sampling["min_success_rate"]), float(sampling["max_success_rate"])
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigError(
            "algo.dynamic_sampling needs 0 <= min_success_rate <= max_success_rate <= 1; "
            f"got [{low}, {high}]"
        )
    return spec

"""A proof recipe (configs/recipe/*.yaml): what each stage of `rl-post proof` runs.

Every stage is an ordinary `rl-post` command with the overrides the recipe lists, so each step of
a proof can be repeated by hand; the recipe only chooses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rl_post.config import ConfigError

EVAL_MODES = ("stochastic", "deterministic")
RECIPE_KEYS = (
    "name",
    "title",
    "env",
    "demos",
    "sft",
    "rl",
    "eval",
    "targets",
    "baseline",
)


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    env: tuple[str, ...]  # env overrides shared by every stage (e.g. env=pushcube)
    num_demos: int
    demo_workers: int
    demo_overrides: tuple[str, ...]
    sft_overrides: tuple[str, ...]
    rl_overrides: tuple[str, ...]
    eval_episodes: int
    eval_modes: tuple[str, ...]
    eval_num_envs: int
    eval_overrides: tuple[str, ...]
    target_success: float | None
    target_gain: float  # points the "env steps to +gain" figure is reported for (0.3 = +30)
    baseline_overrides: tuple[str, ...] | None  # from-scratch baseline run (None: no baseline)
    extra: dict[str, Any] = field(default_factory=dict)


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"recipe.{key} must be a list of override strings like 'algo.lr=1e-4'")
    return tuple(value)


def parse_recipe(cfg: Mapping[str, Any]) -> Recipe:
    unknown = sorted(set(cfg) - set(RECIPE_KEYS))
    missing = [k for k in RECIPE_KEYS if k not in cfg]
    if unknown or missing:
        raise ConfigError(
            f"recipe has unknown keys {unknown} / lacks keys {missing}; a recipe defines exactly "
            f"{', '.join(RECIPE_KEYS)} (see configs/recipe/*.yaml)"
        )
    evaluation = cfg["eval"]
    modes = tuple(evaluation["modes"])
    bad = [m for m in modes if m not in EVAL_MODES]
    if bad or not modes:
        raise ConfigError(f"recipe.eval.modes {list(modes)}: choose from {', '.join(EVAL_MODES)}")
    if int(evaluation["episodes"]) < 1 or int(cfg["demos"]["num_demos"]) < 1:
        raise ConfigError("recipe.eval.episodes and recipe.demos.num_demos must be >= 1")
    targets = cfg["targets"]
    baseline = cfg["baseline"]
    return Recipe(
        name=str(cfg["name"]),
        title=str(cfg["title"]),
        env=_strings(cfg["env"], "env"),
        num_demos=int(cfg["demos"]["num_demos"]),
        demo_workers=int(cfg["demos"]["num_workers"]),
        demo_overrides=_strings(cfg["demos"].get("overrides"), "demos.overrides"),
        sft_overrides=_strings(cfg["sft"]["overrides"], "sft.overrides"),
        rl_overrides=_strings(cfg["rl"]["overrides"], "rl.overrides"),
        eval_episodes=int(evaluation["episodes"]),
        eval_modes=modes,
        eval_num_envs=int(evaluation["num_envs"]),
        eval_overrides=_strings(evaluation.get("overrides"), "eval.overrides"),
        target_success=None if targets.get("success") is None else float(targets["success"]),
        target_gain=float(targets.get("gain", 0.3)),
        baseline_overrides=None
        if baseline is None or not baseline.get("enabled", False)
        else _strings(baseline["overrides"], "baseline.overrides"),
    )

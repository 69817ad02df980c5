"""The two policies an evaluation reports, side by side on the same seeds.

stochastic:    the model's configured sampler (Flow-Noise / Flow-SDE / token temperature): the
               policy RL trains and the one the rollouts' training success measures.
deterministic: the flow ODE / the token argmax. A flow policy's ODE starts from a random x_1
               (unless model.initial_noise=zero); it is drawn from the evaluation's seeded
               generator, so a deterministic result repeats exactly for the same seeds,
               eval.num_envs and eval.generator_seed.
Metrics: eval/<mode>/* for every evaluated mode, and eval/* for the headline mode (eval.mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rl_post.config import ConfigError

MODES = ("deterministic", "stochastic")
MODE_NOTES = {
    "deterministic": (
        "ODE from a seeded random x_1, or x_1 = 0 with initial_noise=zero (flow), or argmax "
        "(tokens); reproducible for the same seeds, num_envs and generator_seed"
    ),
    "stochastic": "the model's configured sampler, as RL trains it; seeded by generator_seed",
}
SUMMARY_KEYS = ("successes", "episodes", "success_rate", "ci_low", "ci_high")


def eval_modes(mode: str, both_modes: bool) -> list[str]:
    """The modes to evaluate, headline (eval.mode) first."""
    if mode not in MODES:
        raise ConfigError(f"eval.mode='{mode}' is not valid; choose one of {', '.join(MODES)}")
    return [mode, *(m for m in MODES if m != mode)] if both_modes else [mode]


def _summary_metrics(prefix: str, overall: Mapping[str, Any]) -> dict[str, float]:
    out = {f"{prefix}/{k}": float(overall[k]) for k in SUMMARY_KEYS}
    out[f"{prefix}/episode_length"] = float(overall.get("mean_length", float("nan")))
    for name, share in overall.get("milestones", {}).items():
        out[f"{prefix}/milestone/{name}"] = float(share)
    return out


def eval_metrics(reports: Mapping[str, Mapping[str, Any]], headline: str) -> dict[str, float]:
    """eval/<mode>/* per evaluated mode plus eval/* of the headline mode (reports: mode -> report)."""
    metrics: dict[str, float] = {}
    for mode, report in reports.items():
        metrics.update(_summary_metrics(f"eval/{mode}", report["tasks"]["overall"]))
    metrics.update(_summary_metrics("eval", reports[headline]["tasks"]["overall"]))
    return metrics


def one_line(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """'deterministic 35/100 = 35.0% [26.4%, 44.8%]; stochastic 30/100 = ...'."""
    parts = []
    for mode, report in reports.items():
        o = report["tasks"]["overall"]
        parts.append(
            f"{mode} {o['successes']}/{o['episodes']} = {o['success_rate']:.1%} "
            f"[{o['ci_low']:.1%}, {o['ci_high']:.1%}]"
        )
    return "; ".join(parts)

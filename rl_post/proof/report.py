"""From a finished proof's stage outputs to one result row (JSON + Markdown). Pure functions."""

from __future__ import annotations

import math
from typing import Any

from rl_post.proof.recipe import Recipe


def eval_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The overall line of an eval_report.json: successes, episodes, rate and its interval."""
    overall = report["tasks"]["overall"]
    return {
        "successes": int(overall["successes"]),
        "episodes": int(overall["episodes"]),
        "success_rate": float(overall["success_rate"]),
        "ci_low": float(overall["ci_low"]),
        "ci_high": float(overall["ci_high"]),
    }


def eval_curve(rows: list[dict[str, Any]], mode: str, run_mode: str) -> list[dict[str, float]]:
    """In-run held-out evaluations [(env_steps, wall_s, success, ci)] of one eval mode, from a
    training run's metrics.jsonl rows: keys eval/<mode>/..., or eval/... when `mode` is the
    run's own eval.mode (`run_mode`)."""
    points = []
    for row in rows:
        if f"eval/{mode}/success_rate" in row:
            prefix = f"eval/{mode}/"
        elif mode == run_mode:
            prefix = "eval/"
        else:
            continue
        rate = row.get(prefix + "success_rate")
        if not isinstance(rate, int | float):
            continue
        points.append(
            {
                "env_steps": float(row.get("perf/env_steps") or 0.0),
                "wall_s": float(row.get("perf/wall_s") or 0.0),
                "success_rate": float(rate),
                "ci_low": float(row.get(prefix + "ci_low", math.nan)),
                "ci_high": float(row.get(prefix + "ci_high", math.nan)),
            }
        )
    return points


def env_steps_to_reach(curve: list[dict[str, float]], threshold: float) -> float | None:
    """Env steps at the first in-run evaluation whose success is >= threshold (None: never)."""
    for point in curve:
        if point["success_rate"] >= threshold - 1e-12:
            return point["env_steps"]
    return None


def training_totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Env steps, training wall-clock (evaluation excluded) and their ratio of an RL run."""
    if not rows:
        return {"env_steps": 0.0, "train_wall_s": 0.0, "env_steps_per_s": 0.0, "updates": 0}
    last = rows[-1]
    steps, wall = float(last.get("perf/env_steps") or 0.0), float(last.get("perf/wall_s") or 0.0)
    return {
        "env_steps": steps,
        "train_wall_s": wall,
        "env_steps_per_s": steps / wall if wall > 0 else 0.0,
        "updates": int(last.get("iteration", 0)),
    }


def build_row(
    recipe: Recipe,
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    rl_rows: list[dict[str, Any]],
    run_mode: str,
    commands: dict[str, str],
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One proof result: per eval mode the before/after success with intervals, whether the after
    interval lies entirely above the before interval, and env steps to +target_gain."""
    per_mode = {}
    for mode in recipe.eval_modes:
        b, a = before[mode], after[mode]
        curve = eval_curve(rl_rows, mode, run_mode)
        start = curve[0]["success_rate"] if curve else b["success_rate"]
        per_mode[mode] = {
            "before": b,
            "after": a,
            "lift_points": 100 * (a["success_rate"] - b["success_rate"]),
            "after_interval_above_before": a["ci_low"] > b["ci_high"],
            "env_steps_to_gain": env_steps_to_reach(curve, start + recipe.target_gain),
            "curve": curve,
        }
    primary = per_mode[recipe.eval_modes[0]]
    row = {
        "recipe": recipe.name,
        "title": recipe.title,
        "modes": per_mode,
        "primary_mode": recipe.eval_modes[0],
        "target_success": recipe.target_success,
        "target_gain": recipe.target_gain,
        "target_met": (
            primary["after_interval_above_before"]
            and (
                recipe.target_success is None
                or primary["after"]["success_rate"] >= recipe.target_success
            )
        ),
        "training": training_totals(rl_rows),
        "commands": commands,
    }
    if baseline is not None:
        row["baseline"] = baseline
    return row


def _pct(summary: dict[str, Any]) -> str:
    return (
        f"{100 * summary['success_rate']:.0f}% [{100 * summary['ci_low']:.0f}, "
        f"{100 * summary['ci_high']:.0f}]"
    )


MARKDOWN_HEADER = (
    "| recipe | eval | before (SFT) | after RL | lift | env steps | train wall-clock | "
    "env-steps/s | steps to +gain | after > before |\n"
    "|---|---|---|---|---:|---:|---:|---:|---:|---|"
)


def markdown_rows(row: dict[str, Any]) -> list[str]:
    """Markdown table lines (one per eval mode) of a result row; header: MARKDOWN_HEADER."""
    totals = row["training"]
    lines = []
    for mode, m in row["modes"].items():
        gain = m["env_steps_to_gain"]
        gain_cell = f"{gain / 1e3:.0f}k" if gain is not None else "not reached"
        lines.append(
            f"| {row['title']} | {mode} | {_pct(m['before'])} | {_pct(m['after'])} | "
            f"{m['lift_points']:+.0f} | {totals['env_steps'] / 1e6:.2f}M | "
            f"{totals['train_wall_s'] / 60:.0f} min | {totals['env_steps_per_s']:.0f} | "
            f"{gain_cell} | {'yes' if m['after_interval_above_before'] else 'no'} |"
        )
    return lines

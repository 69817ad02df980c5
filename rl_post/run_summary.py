"""The before/after of a training run: first and last held-out evaluation from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVAL_MODES = ("deterministic", "stochastic")


def eval_rows(metrics_path: Path) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl that carry an evaluation, in file order (resumed runs included)."""
    if not metrics_path.is_file():
        return []
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    return [r for r in rows if any(k.startswith("eval/") and k.endswith("/successes") for k in r)]


def before_after(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """{mode: {before, after, change_points, intervals_apart}} from the first and last eval row;
    None with fewer than two evaluations."""
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    out: dict[str, Any] = {"from_iteration": first["iteration"], "to_iteration": last["iteration"]}
    for mode in EVAL_MODES:
        key = f"eval/{mode}/"
        if key + "successes" not in first or key + "successes" not in last:
            continue
        before, after = (_point(r, key) for r in (first, last))
        out[mode] = {
            "before": before,
            "after": after,
            "change_points": round(100 * (after["rate"] - before["rate"]), 1),
            # Wilson intervals that do not overlap: the change is not noise at 95%
            "intervals_apart": after["ci"][0] > before["ci"][1] or after["ci"][1] < before["ci"][0],
        }
    return out


def _point(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "successes": int(row[key + "successes"]),
        "episodes": int(row[key + "episodes"]),
        "rate": float(row[key + "success_rate"]),
        "ci": [float(row[key + "ci_low"]), float(row[key + "ci_high"])],
    }


def describe(summary: dict[str, Any]) -> str:
    """One line per mode: 'deterministic 0/100 [0.0%, 3.7%] -> 37/100 [28.2%, 46.8%] (+37.0 points,
    intervals apart)'."""
    parts = []
    for mode in EVAL_MODES:
        if mode not in summary:
            continue
        s = summary[mode]
        b, a = s["before"], s["after"]
        verdict = "intervals apart" if s["intervals_apart"] else "intervals overlap"
        parts.append(f"{mode} {_fmt(b)} -> {_fmt(a)} ({s['change_points']:+.1f} points, {verdict})")
    span = f"update {summary['from_iteration']} -> {summary['to_iteration']}"
    return f"held-out success, {span}: " + "; ".join(parts)


def _fmt(p: dict[str, Any]) -> str:
    low, high = (100 * x for x in p["ci"])
    return f"{p['successes']}/{p['episodes']} [{low:.1f}%, {high:.1f}%]"

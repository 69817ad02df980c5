"""PNG charts of benchmark and sweep results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads
from matplotlib.patches import Patch  # noqa: E402

PHASE_COLORS = {
    "sim": "tab:blue",
    "inference": "tab:orange",
    "learner": "tab:green",
    "weight_sync": "tab:red",
    "idle": "tab:gray",
    "other": "tab:purple",  # rollout bookkeeping outside inference and the sim wait
}


def plot_throughput(report: dict[str, Any], path: Path) -> Path:
    """Left: env-steps/s per measurement, labelled with its ratio to the raw simulator.
    Right: time fractions per measurement (async overlaps collection and update: bars may pass 1)."""
    from rl_post.bench.throughput import measurement_rows

    rows = measurement_rows(report)
    labels = [r["label"] for r in rows]
    fig, (ax_sps, ax_time) = plt.subplots(1, 2, figsize=(13, 0.6 * len(rows) + 2.5))
    y = list(range(len(rows)))
    sps = [r["env_steps_per_s"] for r in rows]
    ax_sps.barh(y, sps, color="tab:blue")
    for i, r in enumerate(rows):
        text = f" x{r['ratio_to_sim']:.2f}" if r["ratio_to_sim"] is not None else ""
        ax_sps.text(sps[i], i, text, va="center", fontsize=9)
    ax_sps.set_yticks(y, labels)
    ax_sps.invert_yaxis()
    ax_sps.set_xlabel("env-steps/s (label: ratio to the raw sim measured around it)")
    ax_sps.set_xlim(0, max(sps + [1e-9]) * 1.25)

    phases = [p for p in PHASE_COLORS if any(p in r["time_fraction"] for r in rows[1:])]
    for i, r in enumerate(rows[1:], start=1):
        left = 0.0
        for phase in phases:
            width = float(r["time_fraction"].get(phase, 0.0))
            ax_time.barh(i, width, left=left, color=PHASE_COLORS[phase])
            left += width
    handles = [Patch(color=PHASE_COLORS[p], label=p) for p in phases]
    ax_time.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax_time.set_yticks(y, labels)
    ax_time.invert_yaxis()
    ax_time.set_xlabel("fraction of wall time (summed over workers)")
    ax_time.legend(handles=handles, loc="upper right", fontsize=8)
    config = report["config"]
    fig.suptitle(
        f"{'+'.join(config['tasks'])} {config['obs_mode']} {config['model']} {config['algo']} "
        f"{config['num_envs']} envs on {report['machine'].get('host', '?')}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _series_label(point: dict[str, Any], *extra: str) -> str:
    c = point["config"]
    return " ".join([point["host"], c["model"], c["algo"], c["obs_mode"], *extra])


def plot_sweep_throughput(points: list[dict[str, Any]], path: Path) -> Path:
    """env-steps/s against env count, one line per (host, model, algo, obs mode, measurement)."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        if "throughput" not in p:
            continue
        n = int(p["config"]["num_envs"])
        for name, sps in p["throughput"]["env_steps_per_s"].items():
            series[_series_label(p, name)].append((n, float(sps)))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label, values in sorted(series.items()):
        values.sort()
        style = "--" if label.endswith(" sim") else "-"
        ax.plot([v[0] for v in values], [v[1] for v in values], style, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("parallel envs")
    ax.set_ylabel("env-steps/s")
    ax.set_title("throughput vs env count (dashed: raw simulator)")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep_learning(points: list[dict[str, Any]], path: Path) -> Path:
    """Success rate and episode return against env steps, one line per sweep point."""
    fig, (ax_success, ax_return) = plt.subplots(1, 2, figsize=(13, 5))
    drawn = False
    for p in sorted(points, key=lambda q: (q["host"], q["config"]["num_envs"])):
        curve = p.get("curve") or []
        label = _series_label(p, f"n={p['config']['num_envs']}")
        for ax, key in ((ax_success, "success_rate"), (ax_return, "episode_return")):
            xs = [c["env_steps"] for c in curve if c.get(key) is not None]
            ys = [c[key] for c in curve if c.get(key) is not None]
            if xs:
                ax.plot(xs, ys, marker=".", label=label)
                drawn = True
    for ax, name in ((ax_success, "success rate"), (ax_return, "episode return")):
        ax.set_xlabel("env steps")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=7)
    ax_success.set_title("success vs env steps (rollout episodes)")
    ax_return.set_title("return vs env steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

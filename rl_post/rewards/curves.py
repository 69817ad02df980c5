"""Learning curves of several runs on one PNG: true success vs env steps, from metrics.jsonl.

    python -m rl_post.rewards.curves RUN_A RUN_B --labels true_sparse learned --out curves.png

RUN is a run directory (runs/<name>/<timestamp>) or its metrics.jsonl. The default metric is
rollout/success_rate, the simulator's success of training episodes, which every run logs
whatever reward it was trained on; iterations in which no episode finished have no value and
are skipped. --metric picks another (e.g. eval/success_rate, reward/predicted_success_rate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rl_post.run_metrics import read_curve

DEFAULT_METRIC = "rollout/success_rate"
DEFAULT_X = "perf/env_steps"


def plot_curves(
    runs: list[str | Path],
    labels: list[str],
    out: str | Path,
    metric: str = DEFAULT_METRIC,
    x_key: str = DEFAULT_X,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(labels) != len(runs):
        raise ValueError(f"{len(runs)} runs but {len(labels)} labels")
    fig, ax = plt.subplots(figsize=(6, 4))
    for run, label in zip(runs, labels, strict=True):
        xs, ys = read_curve(run, metric, x_key)
        ax.plot(
            xs, ys, marker="o", markersize=3, label=f"{label} (final {ys[-1]:.2f})" if ys else label
        )
    ax.set_xlabel(x_key)
    ax.set_ylabel(metric)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories or metrics.jsonl files")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: directory names)")
    parser.add_argument("--out", default="reward_curves.png")
    parser.add_argument("--metric", default=DEFAULT_METRIC)
    parser.add_argument("--x", default=DEFAULT_X, dest="x_key")
    args = parser.parse_args(argv)
    labels = args.labels or [
        Path(r).resolve().parent.name if Path(r).is_dir() else str(r) for r in args.runs
    ]
    path = plot_curves(args.runs, labels, args.out, args.metric, args.x_key)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

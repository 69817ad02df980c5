"""One run's learning curve as a PNG: success against env steps and against wall-clock.

    python -m rl_post.learning_curve runs/<name>/<stamp> [--out curve.png]

Held-out evaluation success (points with their Wilson interval; the deterministic and the
stochastic policy when both were evaluated, eval/<mode>/*, else eval/*) and the success of
training episodes (moving average; stochastic policy, training seeds) share each panel. The
trainer rewrites <run>/learning_curve.png after every evaluation, so an interrupted run still has
one. Env-step ticks read 0, 100k, 200k, ... (at most 6 of them), so their labels never collide.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rl_post.run_metrics import read_rows

FILE_NAME = "learning_curve.png"
X_AXES = (("perf/env_steps", "env steps", 1.0), ("perf/wall_s", "wall-clock (min)", 1.0 / 60.0))
MAX_TICKS = 6
# Evaluated policy -> (metric prefix, colour, marker); eval/* (the headline mode) for older runs.
EVAL_SERIES = (
    ("eval/deterministic", "held-out eval, deterministic (95% CI)", "tab:red", "o-"),
    ("eval/stochastic", "held-out eval, stochastic (95% CI)", "tab:green", "s--"),
)
HEADLINE_SERIES = ("eval", "held-out eval (95% CI)", "tab:red", "o-")


def short_count(value: float, _position: object = None) -> str:
    """Tick label of a count: 0, 950, 20k, 2.5k, 1.2M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` values (shorter at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _series(rows: list[dict[str, Any]], x_key: str, keys: tuple[str, ...]) -> list[tuple]:
    return [
        tuple(float(row[k]) for k in (x_key, *keys))
        for row in rows
        if all(row.get(k) is not None for k in (x_key, *keys))
    ]


def _eval_series(rows: list[dict[str, Any]]) -> tuple[tuple[str, str, str, str], ...]:
    """The per-mode series when the run logged them, else the headline eval/* series."""
    per_mode = tuple(
        series
        for series in EVAL_SERIES
        if any(row.get(f"{series[0]}/success_rate") is not None for row in rows)
    )
    return per_mode or (HEADLINE_SERIES,)


def plot_learning_curve(run: str | Path, out: str | Path | None = None, window: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    rows = read_rows(run)
    target = Path(out) if out is not None else Path(run) / FILE_NAME
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (x_key, label, scale) in zip(axes, X_AXES, strict=True):
        train = _series(rows, x_key, ("rollout/success_rate",))
        if train:
            xs = [p[0] * scale for p in train]
            ax.plot(
                xs,
                moving_average([p[1] for p in train], window),
                color="tab:blue",
                alpha=0.5,
                label=f"training episodes (mean of {window} updates)",
            )
        for prefix, name, colour, fmt in _eval_series(rows):
            evals = _series(
                rows, x_key, (f"{prefix}/success_rate", f"{prefix}/ci_low", f"{prefix}/ci_high")
            )
            if not evals:
                continue
            xs = [p[0] * scale for p in evals]
            ys = [p[1] for p in evals]
            err = [[p[1] - p[2] for p in evals], [p[3] - p[1] for p in evals]]
            ax.errorbar(xs, ys, yerr=err, fmt=fmt, color=colour, capsize=3, label=name)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, min_n_ticks=3))
        if x_key == "perf/env_steps":
            ax.xaxis.set_major_formatter(FuncFormatter(short_count))
        ax.set_xlabel(label)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(Path(run).resolve().parent.name + "/" + Path(run).resolve().name, fontsize=9)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory runs/<name>/<stamp> (or its metrics.jsonl)")
    parser.add_argument("--out", default=None, help=f"PNG path (default: <run>/{FILE_NAME})")
    parser.add_argument("--window", type=int, default=10, help="moving-average window (updates)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    run_dir = run if run.is_dir() else run.parent
    print(f"wrote {plot_learning_curve(run_dir, args.out, args.window)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

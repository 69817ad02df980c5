"""One plot and one JSON with an rl_post run's held-out success curve next to a peer system's.

    python -m rl_post.bench.peer_curves --ours runs/<name>/<stamp> --peer peer.json \
        --out docs/results/mlp_vs_maniskill_ppo_pushcube.png [--json <curves>.json]

Ours: every row of <run>/metrics.jsonl with eval/successes and eval/episodes (held-out seeds),
drawn with its Wilson interval. Peer: a JSON with a "curve" list (its own frequent, small
evaluations) and optionally "big_evals" (larger evaluations at fixed points), each entry holding
env_steps, successes and episodes; the ManiSkill PPO peer script writes that layout. Both are
plotted against training env steps; the JSON holds exactly the plotted numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rl_post.eval.stats import wilson_interval
from rl_post.run_metrics import read_rows

PEER_SERIES = (("curve", "small evals"), ("big_evals", "held-out evals"))


def point(env_steps: float, successes: int, episodes: int) -> dict[str, float]:
    low, high = wilson_interval(successes, episodes)
    return {
        "env_steps": float(env_steps),
        "successes": int(successes),
        "episodes": int(episodes),
        "success_rate": successes / episodes if episodes else float("nan"),
        "ci_low": low,
        "ci_high": high,
    }


def our_curve(run: str | Path) -> list[dict[str, float]]:
    rows = read_rows(run)
    points = [
        point(r["perf/env_steps"], round(r["eval/successes"]), round(r["eval/episodes"]))
        for r in rows
        if r.get("eval/episodes") and r.get("perf/env_steps") is not None
    ]
    if not points:
        raise ValueError(f"{run}: metrics.jsonl has no evaluation rows (eval/successes)")
    return points


def peer_curves(peer: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    if "curve" not in peer:
        raise ValueError("peer JSON has no 'curve' list of {env_steps, successes, episodes}")
    return {
        key: [point(e["env_steps"], e["successes"], e["episodes"]) for e in peer.get(key, [])]
        for key, _ in PEER_SERIES
    }


def first_reaching(points: list[dict[str, float]], rate: float) -> float | None:
    """Env steps of the first evaluation with success rate >= rate (None: never)."""
    return next((p["env_steps"] for p in points if p["success_rate"] >= rate), None)


def summary(points: list[dict[str, float]]) -> dict[str, Any]:
    if not points:
        return {}
    best = max(points, key=lambda p: (p["success_rate"], -p["env_steps"]))
    return {
        "first_ge_50": first_reaching(points, 0.5),
        "first_ge_90": first_reaching(points, 0.9),
        "peak": best,
        "final": points[-1],
    }


def plot(
    ours: list[dict[str, float]],
    peer: dict[str, list[dict[str, float]]],
    out: Path,
    labels: tuple[str, str],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [p["env_steps"] / 1000 for p in ours]
    ax.plot(xs, [p["success_rate"] for p in ours], "o-", color="tab:blue", label=labels[0])
    ax.fill_between(
        xs,
        [p["ci_low"] for p in ours],
        [p["ci_high"] for p in ours],
        color="tab:blue",
        alpha=0.2,
        label=f"{labels[0]}: 95% Wilson interval",
    )
    small, big = peer.get("curve", []), peer.get("big_evals", [])
    if small:
        n = round(sum(p["episodes"] for p in small) / len(small))
        ax.plot(
            [p["env_steps"] / 1000 for p in small],
            [p["success_rate"] for p in small],
            ".-",
            color="tab:orange",
            alpha=0.6,
            label=f"{labels[1]} ({n}-episode evals)",
        )
    if big:
        n = round(sum(p["episodes"] for p in big) / len(big))
        ax.errorbar(
            [p["env_steps"] / 1000 for p in big],
            [p["success_rate"] for p in big],
            yerr=[
                [p["success_rate"] - p["ci_low"] for p in big],
                [p["ci_high"] - p["success_rate"] for p in big],
            ],
            fmt="s",
            color="tab:red",
            capsize=3,
            label=f"{labels[1]} ({n} held-out episodes, 95% Wilson)",
        )
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("training env steps (thousands)")
    ax.set_ylabel("held-out success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def compare(
    ours_run: str | Path,
    peer_json: str | Path,
    out: str | Path,
    json_out: str | Path | None = None,
    labels: tuple[str, str] = ("rl_post", "peer"),
    title: str = "",
) -> dict[str, Any]:
    ours = our_curve(ours_run)
    peer_raw = json.loads(Path(peer_json).read_text())
    peer = peer_curves(peer_raw)
    out = Path(out)
    plot(ours, peer, out, labels, title)
    result = {
        "ours": {"label": labels[0], "run": str(ours_run), "curve": ours, "summary": summary(ours)},
        "peer": {
            "label": labels[1],
            "source": str(peer_json),
            **{key: points for key, points in peer.items()},
            "summary": {key: summary(points) for key, points in peer.items()},
            **{k: v for k, v in peer_raw.items() if k in ("args", "train_env_steps_per_s")},
        },
    }
    target = Path(json_out) if json_out is not None else out.with_suffix(".json")
    target.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours", required=True, help="rl_post run directory")
    parser.add_argument("--peer", required=True, help="peer JSON (curve / big_evals)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--json", default=None, help="JSON of both curves (default: next to PNG)")
    parser.add_argument("--labels", nargs=2, default=["rl_post", "peer"])
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    compare(args.ours, args.peer, args.out, args.json, tuple(args.labels), args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

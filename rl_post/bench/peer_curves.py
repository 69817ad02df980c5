"""One plot and one JSON with rl_post runs' held-out success curves next to a peer system's.

    python -m rl_post.bench.peer_curves --ours runs/<name>/<stamp> [more runs] --peer peer.json \
        --labels "<run label>" [more] "<peer label>" \
        --out docs/results/mlp_vs_maniskill_ppo_pushcube.png [--json <curves>.json]

Ours: every row of <run>/metrics.jsonl with eval/successes and eval/episodes (held-out seeds),
drawn with its Wilson interval (one line per run). Peer: a JSON with a "curve" list (its own frequent, small
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


OUR_COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:cyan")


def plot(
    ours: list[tuple[str, list[dict[str, float]]]],
    peer: dict[str, list[dict[str, float]]],
    peer_label: str,
    out: Path,
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for index, (label, points) in enumerate(ours):
        color = OUR_COLORS[index % len(OUR_COLORS)]
        xs = [p["env_steps"] / 1000 for p in points]
        ax.plot(xs, [p["success_rate"] for p in points], "o-", color=color, label=label)
        ax.fill_between(
            xs,
            [p["ci_low"] for p in points],
            [p["ci_high"] for p in points],
            color=color,
            alpha=0.15,
        )
    small, big = peer.get("curve", []), peer.get("big_evals", [])
    if small:
        n = round(sum(p["episodes"] for p in small) / len(small))
        ax.plot(
            [p["env_steps"] / 1000 for p in small],
            [p["success_rate"] for p in small],
            ".-",
            color="tab:orange",
            alpha=0.5,
            label=f"{peer_label} ({n}-episode evals)",
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
            label=f"{peer_label} ({n} held-out episodes)",
        )
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("training env steps (thousands)")
    ax.set_ylabel("held-out success rate (bands, bars: 95% Wilson)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def compare(
    ours_runs: list[str | Path],
    peer_json: str | Path,
    out: str | Path,
    json_out: str | Path | None = None,
    labels: list[str] | None = None,
    title: str = "",
) -> dict[str, Any]:
    """labels: one per run of ours_runs, then the peer's (default: run directory names, peer)."""
    names = list(labels) if labels else [Path(r).name for r in ours_runs] + ["peer"]
    if len(names) != len(ours_runs) + 1:
        raise ValueError(
            f"{len(names)} labels for {len(ours_runs)} runs + the peer; give one label per run "
            "and one for the peer"
        )
    ours = [(label, our_curve(run)) for label, run in zip(names, ours_runs, strict=False)]
    peer_raw = json.loads(Path(peer_json).read_text())
    peer = peer_curves(peer_raw)
    out = Path(out)
    plot(ours, peer, names[-1], out, title)
    result = {
        "ours": [
            {"label": label, "run": str(run), "curve": points, "summary": summary(points)}
            for (label, points), run in zip(ours, ours_runs, strict=True)
        ],
        "peer": {
            "label": names[-1],
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
    parser.add_argument("--ours", required=True, nargs="+", help="rl_post run directories")
    parser.add_argument("--peer", required=True, help="peer JSON (curve / big_evals)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--json", default=None, help="JSON of both curves (default: next to PNG)")
    parser.add_argument("--labels", nargs="+", default=None, help="one per run, then the peer's")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    compare(args.ours, args.peer, args.out, args.json, args.labels, args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

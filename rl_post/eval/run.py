"""`rl-post eval`: success rate of a policy checkpoint on a fixed seed suite.

Seeds are eval.seed_base + [0, eval.episodes) for every task; the default base (1e9) is disjoint
from training seeds (env.seed = 0..) and demo seeds (2e9..). Writes eval_report.json and
eval_report.md to runs/<name>/<timestamp>/ and prints the table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rl_post.config import ConfigError
from rl_post.eval.rollout import evaluate_policy
from rl_post.eval.stats import SUCCESS_METRICS
from rl_post.run_dir import new_run_dir, write_config

MODES = ("deterministic", "stochastic")


def seed_suite(seed_base: int, episodes: int) -> list[int]:
    if episodes < 1:
        raise ConfigError(f"eval.episodes must be >= 1, got {episodes}")
    if not 0 <= seed_base <= 2**31 - episodes:
        raise ConfigError(f"eval.seed_base must keep every seed in [0, 2**31), got {seed_base}")
    return list(range(seed_base, seed_base + episodes))


def markdown_table(report: dict[str, Any]) -> str:
    pct = int(round(100 * report["confidence"]))
    lines = [
        f"| task | episodes | {report['metric']} | {pct}% Wilson CI | mean length | mean return |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for task, s in report["tasks"].items():
        name = f"**{task}**" if task == "overall" else task
        lines.append(
            f"| {name} | {s['episodes']} | {s['successes']}/{s['episodes']} = "
            f"{100 * s['success_rate']:.1f}% | [{100 * s['ci_low']:.1f}%, "
            f"{100 * s['ci_high']:.1f}%] | {s['mean_length']:.1f} | {s['mean_return']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "eval_report.json", folder / "eval_report.md"
    json_path.write_text(json.dumps(report, indent=2))
    header = (
        f"# Evaluation of `{report.get('checkpoint', 'policy')}`\n\n"
        f"mode: {report['mode']}, seeds {report['seeds'][0]}..{report['seeds'][-1]} "
        f"({len(report['seeds'])} per task)\n\n"
    )
    md_path.write_text(header + markdown_table(report))
    return json_path, md_path


def sampler_config(checkpoint: str, overrides: Any) -> dict[str, Any] | None:
    """The checkpoint's model config with eval.sampler's runtime overrides (None: unchanged).

    Lets a stochastic evaluation use the sampler an RL run will use (e.g. flow_sde at noise 0.2)
    on a checkpoint saved with another one (SFT checkpoints keep the default sampler).
    """
    from rl_post.models.checkpoint import read_checkpoint

    chosen = {k: v for k, v in dict(overrides or {}).items() if v is not None}
    if not chosen:
        return None
    return {**read_checkpoint(checkpoint).model_config.to_dict(), **chosen}


def eval_main(cfg: DictConfig) -> int:
    from rl_post.models.checkpoint import load_policy

    e = cfg.eval
    if e.checkpoint is None:
        raise ConfigError(
            "eval.checkpoint is not set; pass a policy checkpoint directory, e.g. "
            "eval.checkpoint=runs/<name>/<timestamp>/checkpoints/best"
        )
    mode = str(e.mode)
    if mode not in MODES:
        raise ConfigError(f"eval.mode='{mode}' is not valid; choose one of {', '.join(MODES)}")
    if e.metric not in SUCCESS_METRICS:
        raise ConfigError(
            f"eval.metric='{e.metric}' is not valid; choose one of {', '.join(SUCCESS_METRICS)}"
        )
    seeds = seed_suite(int(e.seed_base), int(e.episodes))
    policy = load_policy(
        str(e.checkpoint), expect_config=sampler_config(str(e.checkpoint), e.sampler), device="cpu"
    )
    policy.eval()
    run_dir = new_run_dir(str(cfg.output_root), str(cfg.name))
    write_config(run_dir, cfg)
    started = time.perf_counter()
    report = evaluate_policy(
        policy,
        cfg.env,
        seeds,
        mode=mode,
        num_envs=int(e.num_envs),
        metric=str(e.metric),
        confidence=float(e.confidence),
        generator_seed=int(e.generator_seed),
        progress=True,
    )
    report["checkpoint"] = str(e.checkpoint)
    report["seconds"] = time.perf_counter() - started
    if e.video.enabled:
        from rl_post.eval.video import record_videos

        report["videos"] = record_videos(
            policy,
            cfg.env,
            seeds[: int(e.video.episodes_per_task)],
            mode,
            run_dir / "videos",
            fps=int(e.video.fps),
            generator_seed=int(e.generator_seed),
        )
    json_path, md_path = write_report(report, run_dir)
    print(markdown_table(report), end="")
    print(f"[eval] {report['seconds']:.1f}s; report: {json_path} and {md_path}")
    return 0

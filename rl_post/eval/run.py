"""`rl-post eval`: success rate of a policy checkpoint on a fixed seed suite.

Seeds are eval.seed_base + [0, eval.episodes) for every task; the default base (1e9) is disjoint
from training seeds (env.seed = 0..) and demo seeds (2e9..). The env settings default to those the
checkpoint records (models/checkpoint_env.py); the stochastic and the deterministic policy run on
the same seeds (eval/modes.py). Writes eval_report.json and eval_report.md, with every setting
that can change the number, to runs/eval-<checkpoint's run>-<checkpoint>-on-<task>/<timestamp>/
and prints the tables.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rl_post.config import ConfigError
from rl_post.eval.modes import MODE_NOTES
from rl_post.eval.rollout import evaluate_policy
from rl_post.eval.stats import SUCCESS_METRICS
from rl_post.run_dir import new_run_dir, write_config


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
    return "\n".join(lines) + "\n" + milestone_lines(report["tasks"])


def milestone_lines(tasks: dict[str, Any]) -> str:
    """'Reached at any step' shares of the tasks' info flags: where failed episodes stopped."""
    lines = [
        f"- {task}: " + ", ".join(f"{name} {share:.0%}" for name, share in s["milestones"].items())
        for task, s in tasks.items()
        if s.get("milestones")
    ]
    return "\nReached at any step of an episode:\n\n" + "\n".join(lines) + "\n" if lines else ""


def write_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "eval_report.json", folder / "eval_report.md"
    json_path.write_text(json.dumps(report, indent=2))
    header = (
        f"# Evaluation of `{report.get('checkpoint', 'policy')}`\n\n"
        f"seeds {report['seeds'][0]}..{report['seeds'][-1]} ({len(report['seeds'])} per task)\n\n"
    )
    settings = report.get("settings", {})
    if settings:
        header += "Settings (everything that changes the number):\n\n" + "".join(
            f"- {key}: {value}\n" for key, value in settings.items() if key != "model"
        )
        header += "\n"
    sections = []
    for mode, part in report.get("modes", {report["mode"]: report}).items():
        note = MODE_NOTES.get(mode, "")
        sections.append(
            f"## {mode}{' (' + note + ')' if note else ''}\n\n"
            + markdown_table({**report, "tasks": part["tasks"]})
        )
    md_path.write_text(header + "\n".join(sections))
    return json_path, md_path


def eval_run_name(info: Any, tasks: Any) -> str:
    """eval-<checkpoint's run>-<checkpoint>-on-<task(s)>, e.g.
    eval-sft-PushCube-v1-flow_tiny-state_flow_sft-best-on-PushCube-v1."""
    from rl_post.config import tasks_tag
    from rl_post.models.checkpoint import TRAINING_CHECKPOINT_POLICY_DIR

    folder = Path(info.path).resolve()
    if folder.name == TRAINING_CHECKPOINT_POLICY_DIR:
        folder = folder.parent  # <run>/checkpoints/iter_NNNNNN/policy
    run = info.meta.get("run")
    if not run:  # older checkpoints: runs/<name>/<stamp>/checkpoints/<checkpoint>
        parents = folder.parents
        run = parents[2].name if folder.parent.name == "checkpoints" and len(parents) > 2 else ""
    parts = ["eval", str(run), folder.name, "on", tasks_tag(tasks)]
    return "-".join(p for p in parts if p)


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
    import torch

    from rl_post.config import check_preset_serves_tasks
    from rl_post.eval.modes import eval_modes, one_line
    from rl_post.eval.rollout import make_eval_env, resolve_num_envs
    from rl_post.models.checkpoint import load_policy, read_checkpoint
    from rl_post.models.checkpoint_env import (
        MISMATCH_FLAG,
        bound_mismatches,
        check_mismatch,
        describe,
        env_from_checkpoint,
        env_record,
    )

    e = cfg.eval
    if e.checkpoint is None:
        raise ConfigError(
            "eval.checkpoint is not set; pass a policy checkpoint directory, e.g. "
            "eval.checkpoint=runs/<name>/<timestamp>/checkpoints/best"
        )
    modes = eval_modes(str(e.mode), bool(e.both_modes))
    if e.metric not in SUCCESS_METRICS:
        raise ConfigError(
            f"eval.metric='{e.metric}' is not valid; choose one of {', '.join(SUCCESS_METRICS)}"
        )
    seeds = seed_suite(int(e.seed_base), int(e.episodes))
    info = read_checkpoint(str(e.checkpoint))
    taken, warning = env_from_checkpoint(cfg, e.checkpoint, info.meta)
    check_preset_serves_tasks(cfg)
    if taken is not None:
        print(f"[eval] env from the checkpoint: {describe(taken)}", flush=True)
    if warning:
        print(f"[eval] {warning}", flush=True)
    torch.set_num_threads(max(1, int(e.torch_threads)))
    policy = load_policy(
        str(e.checkpoint), expect_config=sampler_config(str(e.checkpoint), e.sampler), device="cpu"
    )
    policy.eval()
    tasks = list(dict.fromkeys(str(t) for t in cfg.env.tasks))
    num_envs = resolve_num_envs(e.num_envs, cfg.env, len(seeds) * len(tasks))
    name = str(cfg.name) if cfg.name else eval_run_name(info, tasks)
    run_dir = new_run_dir(str(cfg.output_root), name)
    write_config(run_dir, cfg)
    print(
        f"[eval] {len(seeds)} episodes per task x {len(tasks)} task(s) x {len(modes)} mode(s) "
        f"({', '.join(modes)}) on {num_envs} envs; outputs in {run_dir}",
        flush=True,
    )
    started = time.perf_counter()
    env = make_eval_env(cfg.env, num_envs, len(seeds))
    reports: dict[str, dict[str, Any]] = {}
    try:
        bounds = check_mismatch(
            e.checkpoint, bound_mismatches(info.spec, env.spec), bool(cfg[MISMATCH_FLAG])
        )
        if bounds:
            print(f"[eval] {bounds}", flush=True)
        for mode in modes:
            mode_started = time.perf_counter()
            reports[mode] = evaluate_policy(
                policy,
                cfg.env,
                seeds,
                mode=mode,
                num_envs=num_envs,
                metric=str(e.metric),
                confidence=float(e.confidence),
                generator_seed=int(e.generator_seed),
                progress=True,
                env=env,
            )
            reports[mode]["seconds"] = time.perf_counter() - mode_started
    finally:
        env.close()
    headline = reports[modes[0]]
    report = {
        **{k: v for k, v in headline.items() if k != "seconds"},
        "checkpoint": str(e.checkpoint),
        "seconds": time.perf_counter() - started,
        "modes": {
            mode: {"tasks": r["tasks"], "episodes": r["episodes"], "seconds": r["seconds"]}
            for mode, r in reports.items()
        },
        "settings": {
            "checkpoint": str(e.checkpoint),
            "checkpoint_run": info.meta.get("run"),
            "checkpoint_extra": info.meta.get("extra", {}),
            "env": {**env_record(cfg.env), "backend": str(cfg.env.backend)},
            "env_from_checkpoint": sorted(taken or {}),
            MISMATCH_FLAG: bool(cfg[MISMATCH_FLAG]),
            "episodes_per_task": len(seeds),
            "seeds": f"{seeds[0]}..{seeds[-1]}",
            "modes": modes,
            "mode_notes": {m: MODE_NOTES[m] for m in modes},
            "num_envs": num_envs,
            "generator_seed": int(e.generator_seed),
            "metric": str(e.metric),
            "confidence": float(e.confidence),
            "model": policy.config.to_dict(),
        },
    }
    if e.video.enabled:
        from rl_post.eval.video import record_videos

        report["videos"] = record_videos(
            policy,
            cfg.env,
            seeds[: int(e.video.episodes_per_task)],
            modes[0],
            run_dir / "videos",
            fps=int(e.video.fps),
            generator_seed=int(e.generator_seed),
        )
    json_path, md_path = write_report(report, run_dir)
    for mode, r in reports.items():
        print(f"{mode} ({MODE_NOTES[mode]}):")
        print(markdown_table(r), end="")
    print(f"[eval] {one_line(reports)}")
    print(f"[eval] {report['seconds']:.1f}s; report: {json_path} and {md_path}")
    return 0

"""Shared set-up for trainer tests: tiny, fast configs composed exactly as `rl-post train` does."""

from __future__ import annotations

import json
from pathlib import Path

from rl_post.config import load_config

TINY = [
    "env.num_envs=2",
    "env.max_episode_steps=16",
    "env.reward_mode=dense",
    "logger=none",
    "eval.episodes=0",
    "eval.every=0",
    "train.steps_per_segment=4",
    "algo.update_epochs=1",
    "algo.num_minibatches=2",
]


def tiny_config(tmp_path: Path, *overrides: str):
    return load_config("train", [*TINY, f"output_root={tmp_path}", *overrides])


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

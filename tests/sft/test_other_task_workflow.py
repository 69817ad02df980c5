"""The README workflow on a task no preset names, with only env=pushcube added to its commands:
collect-demos -> sft (with a preset) -> eval (env from the checkpoint) -> train with init_from.
Every output is named after the task; evaluating on another task needs allow_task_mismatch.

Kept small: 2 demos, 20 SFT steps of a shrunken model, 1-2 eval episodes of 12 steps, 1 update.
"""

from __future__ import annotations

import json
import os

import pytest

from rl_post.cli import main as cli_main
from tests.sft.tiny import tiny_overrides

pytestmark = pytest.mark.sim

TASK = "PushCube-v1"
DIST_ENV_VARS = {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"}


def test_pushcube_workflow_with_only_env_added(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the commands' default paths (data/demos, runs) land here
    for key in DIST_ENV_VARS:  # an in-process learner of this pytest may have set them
        monkeypatch.delenv(key, raising=False)
    assert (
        cli_main(["collect-demos", "env=pushcube", "collect.num_demos=2", "collect.num_workers=0"])
        == 0
    )
    demo_file = tmp_path / "data" / "demos" / f"{TASK}_state_pd_ee_delta_pose.h5"
    assert demo_file.is_file()

    small_sft = ["sft.num_demos=1", "sft.val_episodes=1", "sft.steps=20", "sft.batch_size=16"]
    small_sft += ["sft.val_every=10", "sft.log_every=10", *tiny_overrides("flow")]
    assert cli_main(["sft", "env=pushcube", "presets=state_flow_sft", *small_sft]) == 0
    (sft_run,) = (tmp_path / "runs" / f"sft-{TASK}-flow_tiny-state_flow_sft").iterdir()
    checkpoint = sft_run / "checkpoints" / "best"
    assert json.loads((checkpoint / "meta.json").read_text())["env"]["tasks"] == [TASK]

    small_eval = ["eval.episodes=1", "eval.num_envs=1", "env.max_episode_steps=12"]
    assert cli_main(["eval", f"eval.checkpoint={checkpoint}", *small_eval]) == 0
    (eval_run,) = (
        tmp_path / "runs" / f"eval-sft-{TASK}-flow_tiny-state_flow_sft-best-on-{TASK}"
    ).iterdir()
    report = json.loads((eval_run / "eval_report.json").read_text())
    assert set(report["tasks"]) == {TASK, "overall"}
    assert set(report["modes"]) == {"deterministic", "stochastic"}
    settings = report["settings"]
    assert settings["env"]["tasks"] == [TASK] and settings["env"]["max_episode_steps"] == 12
    assert settings["env"]["ignore_terminations"] is False and settings["num_envs"] == 1
    assert "tasks" in settings["env_from_checkpoint"]
    assert "max_episode_steps" not in settings["env_from_checkpoint"]  # given on the command line

    capsys.readouterr()
    assert cli_main(["eval", f"eval.checkpoint={checkpoint}", "env=pullcube", *small_eval]) == 2
    assert "allow_task_mismatch=true" in capsys.readouterr().err
    allowed = ["env=pullcube", "allow_task_mismatch=true", "eval.both_modes=false"]
    assert cli_main(["eval", f"eval.checkpoint={checkpoint}", *allowed, *small_eval]) == 0
    assert "WARNING" in capsys.readouterr().out
    (transfer,) = (
        tmp_path / "runs" / f"eval-sft-{TASK}-flow_tiny-state_flow_sft-best-on-PullCube-v1"
    ).iterdir()
    assert set(json.loads((transfer / "eval_report.json").read_text())["modes"]) == {
        "deterministic"
    }

    small_rl = ["env.num_envs=2", "algo.group_size=2", "train.segments_per_update=1"]
    small_rl += ["train.iterations=1", "runtime=serial", "logger=none", "env.max_episode_steps=12"]
    small_rl += ["eval.episodes=1", "eval.both_modes=false", *tiny_overrides("flow")]
    args = ["train", "env=pushcube", "presets=flow_grpo_rl", f"init_from={checkpoint}", *small_rl]
    assert cli_main(args) == 0
    (rl_run,) = (tmp_path / "runs" / f"{TASK}-flow_tiny-grpo-flow_grpo_rl").iterdir()
    rows = [json.loads(line) for line in (rl_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["iteration"] == 0 and rows[-1]["iteration"] == 1
    meta = json.loads((rl_run / "checkpoints" / "iter_000001" / "policy" / "meta.json").read_text())
    assert meta["env"]["tasks"] == [TASK] and meta["env"]["reward_mode"] == "dense"
    assert os.listdir(tmp_path / "runs") and all(
        TASK in name or "PullCube-v1" in name for name in os.listdir(tmp_path / "runs")
    )

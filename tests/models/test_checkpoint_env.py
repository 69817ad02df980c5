"""Checkpoints carry the env they were trained for; eval and init_from default to it and refuse
another task unless allow_task_mismatch=true."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from rl_post.config import ConfigError, load_config
from rl_post.eval.run import eval_run_name
from rl_post.models.checkpoint import read_checkpoint, save_policy
from rl_post.models.checkpoint_env import (
    bound_mismatches,
    check_mismatch,
    env_from_checkpoint,
    env_mismatches,
)
from tests.models.helpers import STATE_SPEC, make_policy

PUSH_ENV = [
    "env=pushcube",
    "env.reward_mode=dense",
    "env.ignore_terminations=true",
    "env.max_episode_steps=80",
]


@pytest.fixture
def push_checkpoint(tmp_path):
    """A policy checkpoint as `rl-post sft env=pushcube ...` writes it (run layout included)."""
    env = load_config("sft", PUSH_ENV).env
    folder = tmp_path / "runs" / "sft-PushCube-v1-flow_tiny" / "20260101-000000" / "checkpoints"
    return save_policy(
        make_policy("flow_tiny"), folder / "best", env=env, run="sft-PushCube-v1-flow_tiny"
    )


def test_checkpoint_records_the_env_settings_and_its_run(push_checkpoint):
    meta = json.loads((push_checkpoint / "meta.json").read_text())
    assert meta["env"] == {
        "tasks": ["PushCube-v1"],
        "obs_mode": "state",
        "cameras": ["base_camera"],
        "image_size": [64, 64],
        "control_mode": "pd_ee_delta_pose",
        "reward_mode": "dense",
        "max_episode_steps": 80,
        "ignore_terminations": True,
    }
    assert meta["run"] == "sft-PushCube-v1-flow_tiny"


def test_eval_defaults_to_the_checkpoint_env_and_the_user_keys_win(push_checkpoint):
    cfg = load_config("eval", [f"eval.checkpoint={push_checkpoint}"])
    taken, warning = env_from_checkpoint(
        cfg, push_checkpoint, read_checkpoint(push_checkpoint).meta
    )
    assert warning is None
    assert list(cfg.env.tasks) == ["PushCube-v1"]
    assert (cfg.env.reward_mode, cfg.env.ignore_terminations, cfg.env.max_episode_steps) == (
        "dense",
        True,
        80,
    )
    assert set(taken) == {"tasks", "reward_mode", "ignore_terminations", "max_episode_steps"} | {
        "obs_mode",
        "cameras",
        "image_size",
        "control_mode",
    }
    # a value the user gives wins, even when it restates the default
    cfg = load_config("eval", ["env.ignore_terminations=false"])
    taken, _ = env_from_checkpoint(cfg, push_checkpoint, read_checkpoint(push_checkpoint).meta)
    assert cfg.env.ignore_terminations is False and "ignore_terminations" not in taken
    assert list(cfg.env.tasks) == ["PushCube-v1"]


def test_another_task_is_an_error_unless_allowed(push_checkpoint):
    meta = read_checkpoint(push_checkpoint).meta
    cfg = load_config("eval", ["env=pullcube"])
    with pytest.raises(ConfigError, match=r"PullCube-v1.*allow_task_mismatch=true"):
        env_from_checkpoint(cfg, push_checkpoint, meta)
    cfg = load_config("eval", ["env=pullcube", "allow_task_mismatch=true"])
    taken, warning = env_from_checkpoint(cfg, push_checkpoint, meta)
    assert warning is not None and "WARNING" in warning and "PullCube-v1" in warning
    assert list(cfg.env.tasks) == ["PullCube-v1"] and cfg.env.reward_mode == "dense"


def test_interface_differences_are_named():
    recorded = {"tasks": ["PushCube-v1", "PullCube-v1"], "obs_mode": "state"}
    recorded["control_mode"] = "pd_ee_delta_pose"
    env = load_config("train", ["env.tasks=[PullCube-v1]"]).env
    assert env_mismatches(recorded, env) == []  # one task of a multi-task checkpoint is fine
    env = load_config("train", ["env.obs_mode=rgb", "env.control_mode=pd_joint_delta_pos"]).env
    problems = env_mismatches(recorded, env)
    assert any(p.startswith("tasks:") for p in problems)
    assert any(p.startswith("obs_mode: checkpoint state vs env rgb") for p in problems)
    assert any(p.startswith("control_mode:") for p in problems)
    assert check_mismatch("c", [], allow=False) is None


def test_action_bounds_are_the_normalization_check():
    assert bound_mismatches(STATE_SPEC, STATE_SPEC) == []
    wider = replace(STATE_SPEC, action_high=(2.0, 1.0, 0.5, 2.0))
    (problem,) = bound_mismatches(STATE_SPEC, wider)
    assert problem.startswith("action bounds:")


def test_checkpoint_without_recorded_env_is_used_as_given_with_a_note(tmp_path):
    old = save_policy(make_policy("flow_tiny"), tmp_path / "old")
    cfg = load_config("eval", ["env=pullcube"])
    taken, note = env_from_checkpoint(cfg, old, read_checkpoint(old).meta)
    assert taken is None and note is not None and "records no env" in note
    assert list(cfg.env.tasks) == ["PullCube-v1"]


def test_standalone_eval_folder_names_the_checkpoint_run_and_the_task(push_checkpoint, tmp_path):
    info = read_checkpoint(push_checkpoint)
    assert (
        eval_run_name(info, ["PushCube-v1"]) == "eval-sft-PushCube-v1-flow_tiny-best-on-PushCube-v1"
    )
    # older checkpoints (no run in the meta) are named from their place in the run layout
    training = tmp_path / "runs" / "PickCube-v1-flow_tiny-ppo" / "20260101-000000" / "checkpoints"
    save_policy(make_policy("flow_tiny"), training / "iter_000010" / "policy")
    old = read_checkpoint(training / "iter_000010")
    assert (
        eval_run_name(old, ["PullCube-v1"])
        == "eval-PickCube-v1-flow_tiny-ppo-iter_000010-on-PullCube-v1"
    )

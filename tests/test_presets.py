"""Presets are recipes, not tasks: the task comes from env= / env.tasks=, names follow the task."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rl_post.config import (
    ConfigError,
    check_preset_serves_tasks,
    config_dir,
    load_config,
    tasks_tag,
)
from rl_post.trainer import prepare_config

PRESETS = sorted(p.stem for p in (config_dir() / "presets").glob("*.yaml"))
SFT_PRESETS = [p for p in PRESETS if p.endswith("_sft")]
TRAIN_PRESETS = [p for p in PRESETS if not p.endswith("_sft") and "pickcube" not in p]
OTHER_TASKS = [("pushcube", "PushCube-v1"), ("pullcube", "PullCube-v1")]


def test_no_preset_pins_a_task_or_a_run_name():
    for preset in PRESETS:
        raw = OmegaConf.load(config_dir() / "presets" / f"{preset}.yaml")
        assert "tasks" not in (raw.get("env") or {}), preset
        assert "name" not in raw, preset
        # a preset may carry a task in its name only if it serves that task alone
        served = list((raw.get("preset") or {}).get("tasks") or [])
        assert "pickcube" not in preset or served == ["PickCube-v1"], preset


@pytest.mark.parametrize("env_choice, task", OTHER_TASKS)
@pytest.mark.parametrize("preset", TRAIN_PRESETS)
def test_train_preset_keeps_the_task_of_env(preset, env_choice, task):
    cfg = load_config("train", [f"env={env_choice}", f"presets={preset}"])
    assert list(cfg.env.tasks) == [task]
    assert cfg.name == f"{task}-{cfg.model.name}-{cfg.algo.name}-{preset}"
    prepare_config(cfg)  # and the recipe validates on that task


@pytest.mark.parametrize("env_choice, task", OTHER_TASKS)
@pytest.mark.parametrize("preset", SFT_PRESETS)
def test_sft_preset_keeps_the_task_and_derives_its_demo_file(preset, env_choice, task):
    cfg = load_config("sft", [f"env={env_choice}", f"presets={preset}"])
    assert list(cfg.env.tasks) == [task]
    assert cfg.sft.dataset == f"data/demos/{task}_state_pd_ee_delta_pose.h5"
    assert cfg.name == f"sft-{task}-{cfg.model.name}-{preset}"
    assert list(load_config("eval", [f"env={env_choice}", f"presets={preset}"]).env.tasks) == [task]


def test_names_without_a_preset_and_with_several_tasks():
    assert load_config("train", []).name == "PickCube-v1-flow_tiny-ppo"
    assert load_config("sft", ["env.tasks=[PullCube-v1]"]).name == "sft-PullCube-v1-flow_tiny"
    multi = load_config("collect", ["env=multitask"])
    assert multi.collect.path.startswith("data/demos/PickCube-v1+PushCube-v1+")
    assert tasks_tag(["A", "B", "A"]) == "A+B"


def test_env_keys_the_user_chose_are_recorded_for_checkpoint_defaults():
    keys = load_config("eval", ["env=pushcube", "env.ignore_terminations=false"]).env_explicit_keys
    # the group choice counts for its task (and what it changes), a restated default still counts
    assert set(keys) == {"tasks", "ignore_terminations"}
    preset_keys = set(load_config("train", ["presets=flow_grpo_rl"]).env_explicit_keys)
    assert {"reward_mode", "ignore_terminations", "obs_mode"} <= preset_keys
    assert "tasks" not in preset_keys
    included = set(load_config("train", ["presets=reward_learned"]).env_explicit_keys)
    assert {"obs_mode", "max_episode_steps"} <= included  # from reward_common
    assert load_config("train", []).env_explicit_keys == []


@pytest.fixture
def config_copy(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(config_dir(), folder)
    monkeypatch.setenv("RL_POST_CONFIG_DIR", str(folder))
    return folder


def test_a_preset_may_refuse_tasks_it_cannot_serve_and_says_so(config_copy):
    (config_copy / "presets" / "pick_only.yaml").write_text(
        "# @package _global_\npreset:\n  tasks: [PickCube-v1]\n"
    )
    check_preset_serves_tasks(load_config("train", ["presets=pick_only"]))
    cfg = load_config("train", ["env=pushcube", "presets=pick_only"])
    with pytest.raises(
        ConfigError, match=r"preset 'pick_only' serves only tasks \['PickCube-v1'\]"
    ):
        prepare_config(cfg)


@pytest.mark.parametrize("preset", ["smolvla_pickcube_gpu", "pi0_pickcube_gpu"])
def test_gpu_vla_presets_serve_pickcube_only_and_say_so(preset):
    cfg = load_config("train", [f"presets={preset}"])
    assert list(cfg.env.tasks) == ["PickCube-v1"] and cfg.env.backend == "gpu"
    with pytest.raises(ConfigError, match="serves only tasks \\['PickCube-v1'\\]"):
        check_preset_serves_tasks(load_config("train", ["env=pushcube", f"presets={preset}"]))

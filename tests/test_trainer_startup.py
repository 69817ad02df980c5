"""What `rl-post train` decides and shows before anything slow starts (no env, no workers)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rl_post import cli
from rl_post.config import ConfigError, load_config
from rl_post.models.checkpoint import save_policy
from rl_post.models.factory import build_policy
from rl_post.run_logger import format_duration, format_eta, remaining_evals
from rl_post.trainer import (
    Trainer,
    nominal_env_steps_per_update,
    planned_iterations,
    prepare_config,
    startup_summary,
)
from tests.models.helpers import STATE_SPEC
from tests.trainer_helpers import tiny_config


@pytest.fixture
def push_checkpoint(tmp_path):
    cfg = load_config("sft", ["env=pushcube", "env.ignore_terminations=true"])
    return save_policy(
        build_policy(cfg.model, STATE_SPEC), tmp_path / "push", env=cfg.env, run="sft-push"
    )


def test_init_from_defaults_the_env_to_the_checkpoint(tmp_path, push_checkpoint):
    cfg = load_config("train", [f"init_from={push_checkpoint}", f"output_root={tmp_path}"])
    notes = Trainer._env_from_init_checkpoint(cfg)
    assert list(cfg.env.tasks) == ["PushCube-v1"] and cfg.env.ignore_terminations is True
    assert cfg.name == "PushCube-v1-flow_tiny-ppo"
    assert notes and "tasks=['PushCube-v1']" in notes[0]
    # a preset's env keys are the user's choice: they win over the checkpoint
    cfg = load_config("train", [f"init_from={push_checkpoint}", "presets=reward_true_sparse"])
    Trainer._env_from_init_checkpoint(cfg)
    assert list(cfg.env.tasks) == ["PushCube-v1"] and cfg.env.max_episode_steps == 50


def test_init_from_another_task_fails_before_anything_starts(tmp_path, push_checkpoint):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match="allow_task_mismatch=true"):
        Trainer(tiny_config(runs, "env=pullcube", f"init_from={push_checkpoint}"))
    assert not runs.exists()  # no run directory was made
    cfg = tiny_config(tmp_path, "env=pullcube", f"init_from={push_checkpoint}")
    with pytest.raises(ConfigError):
        Trainer._env_from_init_checkpoint(cfg)
    allowed = tiny_config(
        tmp_path, "env=pullcube", f"init_from={push_checkpoint}", "allow_task_mismatch=true"
    )
    notes = Trainer._env_from_init_checkpoint(allowed)
    assert any("WARNING" in n and "PullCube-v1" in n for n in notes)


def test_critic_warmup_counts_toward_iterations_and_the_summary_says_so(tmp_path):
    cfg = prepare_config(
        tiny_config(tmp_path, "train.iterations=60", "train.critic_warmup_iterations=10")
    )
    assert (
        "60 update(s) = 10 critic warm-up (policy frozen) + 50 policy updates"
        in (startup_summary(cfg)[0])
    )
    with pytest.raises(ConfigError, match="leaves no policy update"):
        prepare_config(
            tiny_config(tmp_path, "train.iterations=5", "train.critic_warmup_iterations=5")
        )


def test_startup_summary_states_the_evaluation_cost(tmp_path):
    cfg = prepare_config(
        tiny_config(tmp_path, "eval.episodes=100", "eval.every=20", "eval.num_envs=8")
    )
    line = startup_summary(cfg)[1]
    assert "100 episodes x 1 task(s) x 2 mode(s) (deterministic, stochastic)" in line
    assert "on 8 envs" in line and "every 20 updates" in line


def test_eta_counts_training_iterations_and_evaluations_apart():
    assert remaining_evals(0, 36, 12) == 3
    assert remaining_evals(12, 36, 12) == 2
    assert remaining_evals(30, 31, 0) == 1 and remaining_evals(31, 31, 10) == 0
    assert format_duration(42) == "42s" and format_duration(187) == "3:07"
    assert format_duration(3723) == "1:02:03"
    assert format_eta(250, 130) == "eta 6:20 (train 4:10 + eval 2:10)"
    assert format_eta(250, 0) == "eta 4:10"


def test_an_env_step_budget_shortens_the_planned_run():
    def planned(iteration: int, env_steps: int, budget: int, iterations: int = 400) -> int:
        return planned_iterations(iterations, budget, iteration, env_steps, nominal_per_update=8192)

    assert planned(0, 0, 1_500_000) == 184  # before any update: from the nominal 8192 per update
    assert planned(1, 8192, 1_500_000) == 184  # ceil(1.5M / 8192) updates in all
    assert planned(10, 81920, 1_500_000) == 184
    assert planned(10, 40960, 1_500_000) == 10 + 357  # measured (episodes ended early) wins
    assert planned(10, 81920, 0) == 400  # no budget
    assert planned(10, 81920, 10**9) == 400  # the budget is beyond train.iterations
    assert planned(184, 184 * 8192, 1_500_000) == 184
    assert planned_iterations(400, 1_500_000, 0, 0, nominal_per_update=0) == 400


def test_nominal_env_steps_per_update_of_the_flow_ppo_preset():
    cfg = load_config("train", ["env=pickcube", "presets=flow_ppo_rl"])
    assert nominal_env_steps_per_update(cfg) == 16 * 16 * 8 * 4  # the 8192 of the preset's comment


def test_train_says_what_it_does_before_loading_torch(monkeypatch, capsys):
    """The first line comes right after the config is composed (about a second), before the
    command's module and torch / DeepSpeed / Ray load (seconds to minutes on a busy machine)."""
    seen: dict[str, str] = {}

    def stop_at_import(name: str):
        seen["before_import"] = capsys.readouterr().out
        raise KeyboardInterrupt

    # only the CLI's own import of the command module (Hydra imports modules too)
    monkeypatch.setattr(cli, "importlib", SimpleNamespace(import_module=stop_at_import))
    assert cli.main(["train", "logger=none"]) == 130
    assert (
        "[start" in seen["before_import"]
        and "rl-post train: config composed" in seen["before_import"]
    )

"""Both evaluated policies side by side, and how many eval envs `auto` means."""

from __future__ import annotations

import pytest

from rl_post.config import ConfigError
from rl_post.eval.modes import eval_metrics, eval_modes, one_line
from rl_post.eval.rollout import auto_num_envs, resolve_num_envs
from rl_post.eval.run import write_report


def _report(successes: int, episodes: int = 10) -> dict:
    overall = {
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "ci_low": 0.1,
        "ci_high": 0.6,
        "mean_length": 50.0,
        "mean_return": 1.0,
    }
    return {"tasks": {"PushCube-v1": overall, "overall": overall}, "episodes": []}


def test_modes_headline_first_or_one_only():
    assert eval_modes("deterministic", True) == ["deterministic", "stochastic"]
    assert eval_modes("stochastic", True) == ["stochastic", "deterministic"]
    assert eval_modes("stochastic", False) == ["stochastic"]
    with pytest.raises(ConfigError, match="eval.mode='greedy'"):
        eval_modes("greedy", True)


def test_metrics_per_mode_and_the_headline():
    reports = {"stochastic": _report(3), "deterministic": _report(4)}
    metrics = eval_metrics(reports, "stochastic")
    assert metrics["eval/success_rate"] == 0.3  # the headline (eval.mode) keeps eval/*
    assert metrics["eval/stochastic/success_rate"] == 0.3
    assert metrics["eval/deterministic/success_rate"] == 0.4
    assert metrics["eval/deterministic/episodes"] == 10.0
    assert not any("milestone" in key for key in metrics)
    reports["deterministic"]["tasks"]["overall"] = {
        **reports["deterministic"]["tasks"]["overall"],
        "milestones": {"is_grasped": 0.9},
    }
    metrics = eval_metrics(reports, "stochastic")
    assert metrics["eval/deterministic/milestone/is_grasped"] == 0.9
    assert "eval/stochastic/milestone/is_grasped" not in metrics
    assert {"eval/ci_low", "eval/ci_high", "eval/episode_length"} <= set(metrics)
    only = eval_metrics({"deterministic": _report(4)}, "deterministic")
    assert not any(k.startswith("eval/stochastic/") for k in only)
    assert one_line(reports).startswith("stochastic 3/10 = 30.0% [10.0%, 60.0%]; deterministic")


def test_auto_eval_envs_follow_the_cores_and_never_exceed_the_episodes(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    cpu = {"backend": "cpu", "num_envs": 32}
    assert auto_num_envs(cpu, 100) == 4  # at least 4 on small machines
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert auto_num_envs(cpu, 100) == 16 and auto_num_envs(cpu, 5) == 5
    assert auto_num_envs({"backend": "gpu", "num_envs": 256}, 100) == 100
    assert resolve_num_envs("auto", cpu, 3) == 3
    assert resolve_num_envs(8, cpu, 100) == 8
    with pytest.raises(ConfigError, match="eval.num_envs"):
        resolve_num_envs(0, cpu, 100)


def test_report_lists_both_modes_and_the_settings(tmp_path):
    report = {
        **_report(3),
        "metric": "success_once",
        "mode": "deterministic",
        "confidence": 0.95,
        "seeds": [1_000_000_000, 1_000_000_009],
        "modes": {"deterministic": _report(3), "stochastic": _report(5)},
        "settings": {"env": {"ignore_terminations": True}, "num_envs": 4, "model": {"x": 1}},
    }
    _, md = write_report(report, tmp_path)
    text = md.read_text()
    assert "## deterministic (ODE from a seeded random x_1" in text and "## stochastic" in text
    assert "3/10 = 30.0%" in text and "5/10 = 50.0%" in text
    assert "ignore_terminations': True" in text and "num_envs: 4" in text
    assert "Reached at any step" not in text
    placed = _report(5)
    placed["tasks"]["PushCube-v1"] = {**placed["tasks"]["PushCube-v1"], "milestones": {"a": 0.5}}
    report["modes"]["stochastic"] = placed
    _, md = write_report(report, tmp_path)
    assert "Reached at any step of an episode:\n\n- PushCube-v1: a 50%\n" in md.read_text()

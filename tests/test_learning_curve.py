"""The per-run learning-curve PNG and its moving average."""

import json

import pytest

from rl_post.learning_curve import main, moving_average, plot_learning_curve


def test_moving_average_by_hand():
    assert moving_average([1.0, 0.0, 1.0, 1.0], 2) == pytest.approx([1.0, 0.5, 0.5, 1.0])
    assert moving_average([], 3) == []


def test_plot_from_metrics_with_and_without_evals(tmp_path):
    rows = [
        {
            "iteration": 0,
            "eval/success_rate": 0.3,
            "eval/ci_low": 0.2,
            "eval/ci_high": 0.4,
            "perf/env_steps": 0,
            "perf/wall_s": 0,
        },
        {"iteration": 1, "rollout/success_rate": 0.5, "perf/env_steps": 100, "perf/wall_s": 5},
        {"iteration": 2, "rollout/success_rate": None, "perf/env_steps": 200, "perf/wall_s": 9},
        {
            "iteration": 3,
            "rollout/success_rate": 0.7,
            "eval/success_rate": 0.6,
            "eval/ci_low": 0.5,
            "eval/ci_high": 0.7,
            "perf/env_steps": 300,
            "perf/wall_s": 14,
        },
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = plot_learning_curve(tmp_path)
    assert path == tmp_path / "learning_curve.png" and path.stat().st_size > 0
    out = tmp_path / "other.png"
    assert main([str(tmp_path / "metrics.jsonl"), "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_missing_metrics_names_the_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        plot_learning_curve(tmp_path)

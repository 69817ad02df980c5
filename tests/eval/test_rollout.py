"""Wave planning of the eval seed suite (every (task, seed) once, sub-envs keep their task)."""

from __future__ import annotations

import pytest

from rl_post.config import ConfigError
from rl_post.eval.rollout import plan_waves
from rl_post.eval.run import markdown_table, seed_suite


def test_each_job_runs_once_on_a_sub_env_of_its_task():
    env_tasks = ["A", "B", "A"]
    jobs = [("A", 1), ("A", 2), ("A", 3), ("B", 1)]
    waves = plan_waves(env_tasks, jobs)
    assert waves == [[("A", 1), ("B", 1), ("A", 2)], [("A", 3), None, None]]


def test_job_for_a_task_no_sub_env_runs_is_an_error():
    with pytest.raises(ValueError, match="C"):
        plan_waves(["A"], [("C", 1)])


def test_seed_suite_and_bounds():
    assert seed_suite(1_000_000_000, 3) == [1_000_000_000, 1_000_000_001, 1_000_000_002]
    with pytest.raises(ConfigError):
        seed_suite(2**31 - 1, 2)


def test_markdown_table_rows():
    summary = {
        "episodes": 4,
        "successes": 1,
        "success_rate": 0.25,
        "ci_low": 0.0456,
        "ci_high": 0.6994,
        "mean_length": 40.0,
        "mean_return": 0.25,
    }
    table = markdown_table(
        {
            "metric": "success_once",
            "confidence": 0.95,
            "tasks": {"PickCube-v1": summary, "overall": summary},
        }
    )
    assert "| PickCube-v1 | 4 | 1/4 = 25.0% | [4.6%, 69.9%] | 40.0 | 0.250 |" in table
    assert "**overall**" in table

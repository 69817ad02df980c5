"""CPU accounting of the bench: classification and deltas against hand-computed values."""

import pytest

from rl_post.bench.cpu_time import classify, cpu_seconds_by_kind, cpu_summary, process_tree_times


def test_classify_names_the_processes_of_a_run():
    assert classify("python -m rl_post.cli bench", is_self=True) == "driver"
    fork = "python -B -c from multiprocessing.forkserver import main; main(41, 43)"
    assert classify(fork, is_self=False) == "env_process"
    assert classify("ray::RolloutActor.collect_segments", is_self=False) == "rollout_actor"
    assert classify("ray::EnvShard.step_chunk", is_self=False) == "env_actor"
    assert classify("/venv/.../ray/core/src/ray/raylet/raylet", False) == "ray_system"
    assert classify("sleep 5", is_self=False) == "other"


def test_cpu_seconds_by_kind_counts_new_processes_from_zero():
    before = {1: ("driver", 10.0), 2: ("env_process", 5.0)}
    after = {1: ("driver", 10.5), 2: ("env_process", 7.0), 3: ("env_process", 1.0)}
    assert cpu_seconds_by_kind(before, after) == {"driver": 0.5, "env_process": 3.0}


def test_cpu_summary_per_env_step_and_cores_used():
    out = cpu_summary({"driver": 0.5, "env_process": 3.5}, env_steps=1000, wall_s=2.0)
    assert out["cpu_s"] == 4.0 and out["cores_used"] == 2.0
    assert out["core_ms_per_env_step"] == pytest.approx(4.0)
    assert out["core_ms_per_env_step_by_kind"] == {"driver": 0.5, "env_process": 3.5}


def test_process_tree_times_includes_this_process():
    times = process_tree_times()
    assert any(kind == "driver" for kind, _ in times.values())

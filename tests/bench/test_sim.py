"""`rl-post bench sim` at a tiny size (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from rl_post.bench.sim import bench_sim_main, measure_sim_throughput
from rl_post.config import load_config

pytestmark = pytest.mark.sim


def test_bench_sim_writes_report(tmp_path, capsys):
    out = tmp_path / "sim.json"
    cfg = load_config(
        "bench",
        ["num_envs_list=[1]", "chunk_sizes=[1,2]", "steps=4", "warmup_steps=2", f"output={out}"],
    )
    assert bench_sim_main(cfg) == 0
    report = json.loads(out.read_text())
    assert report["task"] == "PickCube-v1" and report["machine"]["cpu_count"] >= 1
    rows = report["results"]
    assert [(r["obs_mode"], r["num_envs"], r["chunk_size"]) for r in rows] == [
        ("state", 1, 1),
        ("state", 1, 2),
    ]
    assert all(r["env_steps"] == 4 and r["env_steps_per_s"] > 0 for r in rows)
    assert "env-steps/s" in capsys.readouterr().out


def test_measure_sim_throughput_counts_steps():
    env_cfg = load_config("bench").env
    result = measure_sim_throughput(env_cfg, num_envs=1, steps=6, warmup=0, chunk_size=3)
    assert result["calls"] == 2 and result["env_steps"] == 6 and result["startup_s"] > 0

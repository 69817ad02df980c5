"""`rl-post sweep`: grid expansion, config per point, lossless merge, GPU config, one tiny sweep."""

from __future__ import annotations

import json

import pytest

from rl_post.bench.sweep import (
    check_swept_groups_unchanged,
    grid_points,
    merge_summaries,
    new_summary,
    point_config,
    point_key,
)
from rl_post.bench.sweep import (
    main as sweep_module_main,
)
from rl_post.cli import main as cli_main
from rl_post.config import ConfigError, load_config


def test_grid_points_is_the_cartesian_product_in_axis_order():
    points = grid_points({"num_envs": [1, 2], "algo": ["ppo", "grpo"], "model": None})
    assert points == [
        {"num_envs": 1, "algo": "ppo"},
        {"num_envs": 1, "algo": "grpo"},
        {"num_envs": 2, "algo": "ppo"},
        {"num_envs": 2, "algo": "grpo"},
    ]


def test_grid_points_reject_unknown_and_empty_grids():
    with pytest.raises(ConfigError, match="valid keys: num_envs, env, model"):
        grid_points({"envs": [1]})
    with pytest.raises(ConfigError, match="empty"):
        grid_points({"num_envs": [], "algo": None})


def test_point_config_recomposes_groups_and_applies_overrides():
    base = load_config("sweep", ["train.iterations=3"])
    cfg = point_config(
        base, {"num_envs": 2, "algo": "grpo"}, "sweep", ["algo.group_size=2", "seed=7"]
    )
    assert cfg.algo.name == "grpo" and cfg.algo.group_size == 2
    assert cfg.env.num_envs == 2 and cfg.seed == 7 and cfg.train.iterations == 3
    assert cfg.name == "PickCube-v1-flow_tiny-grpo-n2"
    assert base.algo.name == "ppo" and base.env.num_envs == 4  # the base is left unchanged


def test_changes_inside_a_swept_group_must_go_through_sweep_overrides():
    cfg = load_config("sweep", ["algo.update_epochs=1"])
    with pytest.raises(ConfigError, match="sweep.overrides"):
        check_swept_groups_unchanged(cfg, "sweep", ["algo"])
    check_swept_groups_unchanged(cfg, "sweep", ["model"])


def test_gpu_sweep_config_composes():
    cfg = load_config("sweep_gpu")
    assert cfg.env.backend == "gpu" and cfg.env.sim_device == "cuda"
    assert cfg.learner.precision == "bf16" and cfg.learner.dist_backend == "nccl"
    assert list(cfg.sweep.grid.num_envs) == [64, 128, 256, 512, 1024, 2048]
    assert cfg.runtime.use_ray and list(cfg.bench.rollout_backends) == ["ray"]
    assert cfg.sweep.config_name == "sweep_gpu"
    assert point_config(cfg, {"num_envs": 256}, "sweep_gpu", []).env.num_envs == 256


def _point(host: str, n: int, sps: float, created: str = "2026-01-01T00:00:00+00:00") -> dict:
    config = {
        "tasks": ["PickCube-v1"],
        "obs_mode": "state",
        "env_backend": "cpu",
        "num_envs": n,
        "model": "flow_tiny",
        "algo": "ppo",
    }
    return {
        "key": point_key(host, config),
        "host": host,
        "created": created,
        "config": config,
        "throughput": {"env_steps_per_s": {"sim": sps}, "ratio_to_sim": {"train_sync": 0.5}},
        "curve": [{"iteration": 1, "env_steps": 8.0, "success_rate": 0.0, "episode_return": 0.0}],
    }


def test_merge_is_the_union_and_keeps_differing_results_under_one_key():
    a = new_summary("a", [_point("cpu-box", 1, 100.0), _point("cpu-box", 2, 150.0)], ["cpu-box:a"])
    b = new_summary(
        "b",
        [
            _point("gpu-box", 64, 9000.0),
            _point("cpu-box", 2, 150.0),  # identical repeat: collapses
            _point("cpu-box", 1, 120.0, created="2026-02-01T00:00:00+00:00"),  # a re-run: kept
        ],
        ["gpu-box:b"],
    )
    merged = merge_summaries([a, b], "m")
    keys = [p["key"] for p in merged["points"]]
    assert len(keys) == 4 and len(set(keys)) == 4
    assert "cpu-box|cpu|PickCube-v1|state|flow_tiny|ppo|n1" in keys
    assert "cpu-box|cpu|PickCube-v1|state|flow_tiny|ppo|n1@2026-02-01T00:00:00+00:00" in keys
    assert any(k.startswith("gpu-box|") for k in keys)
    assert merged["sources"] == ["cpu-box:a", "gpu-box:b"]
    assert merge_summaries([merged, a], "again")["points"] == merged["points"]


def test_merge_rejects_files_that_are_not_sweep_summaries():
    with pytest.raises(ConfigError, match="not a sweep summary"):
        merge_summaries([{"kind": "rl_post.bench.throughput"}], "m")


@pytest.mark.e2e
def test_sweep_runs_grid_and_merges_with_another_machine(tmp_path, capsys):
    args = [
        "sweep",
        "sweep.grid.num_envs=[1,2]",
        "env.max_episode_steps=8",
        "env.reward_mode=dense",
        "train.steps_per_segment=3",
        "train.iterations=2",
        "algo.update_epochs=1",
        "algo.num_minibatches=1",
        "bench.sim_steps=8",
        "bench.sim_warmup_steps=0",
        "bench.rollout_segments=1",
        "bench.train_modes=[sync]",
        "sweep.continue_on_error=false",
        f"sweep.output_dir={tmp_path}",
        "sweep.name=cpu",
    ]
    assert cli_main(args) == 0
    summary = json.loads((tmp_path / "cpu.json").read_text())
    assert [p["config"]["num_envs"] for p in summary["points"]] == [1, 2]
    for p in summary["points"]:
        assert {"sim", "rollout_local_pipeline2", "train_sync"} <= set(
            p["throughput"]["env_steps_per_s"]
        )
        assert p["throughput"]["ratio_to_sim"]["train_sync"] > 0
        assert [c["iteration"] for c in p["curve"]] == [1, 2]
    for png in ("cpu_throughput.png", "cpu_learning.png"):
        assert (tmp_path / png).stat().st_size > 0

    other = new_summary("gpu", [_point("gpu-box", 64, 9000.0)], ["gpu-box:gpu"])
    (tmp_path / "gpu.json").write_text(json.dumps(other))
    merged_path = tmp_path / "merged.json"
    argv = ["merge", str(tmp_path / "cpu.json"), str(tmp_path / "gpu.json"), "--output"]
    assert sweep_module_main([*argv, str(merged_path)]) == 0
    merged = json.loads(merged_path.read_text())
    assert {p["key"] for p in merged["points"]} == {
        p["key"] for p in summary["points"] + other["points"]
    }
    assert (tmp_path / "merged_throughput.png").is_file()

    merge_args = [f"sweep.merge=[{tmp_path}/cpu.json,{tmp_path}/gpu.json]", "sweep.merge_name=m2"]
    assert cli_main(["sweep", f"sweep.output_dir={tmp_path}", *merge_args]) == 0
    assert len(json.loads((tmp_path / "m2.json").read_text())["points"]) == 3
    assert "gpu-box|cpu|PickCube-v1" in capsys.readouterr().out

"""`rl-post bench`: pure summaries against hand-computed values, and one tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from rl_post.bench.throughput import (
    async_expectation,
    bench_settings,
    expected_async,
    format_table,
    learning_curve,
    ratio,
    summarize_rollout,
    summarize_sim,
    summarize_training,
)
from rl_post.cli import main as cli_main
from rl_post.config import ConfigError, load_config


def _row(iteration: int, env_steps: float, iteration_s: float, **extra: float) -> dict:
    return {
        "iteration": iteration,
        "perf/env_steps": env_steps,
        "time/iteration_s": iteration_s,
        "time/sim_s": 0.5 * iteration_s,
        "time/inference_s": 0.25 * iteration_s,
        "time/learner_s": 0.1,
        "time/weight_sync_s": 0.0,
        "time/idle_s": 0.05,
        "time/driver_wait_s": 0.6,
        **extra,
    }


def test_summarize_training_skips_warmup_and_differences_cumulative_steps():
    rows = [
        _row(1, 64, 10.0, **{"rollout/success_rate": 0.0}),  # warm-up: slow start, left out
        _row(2, 128, 1.0),  # 64 steps in 1 s
        _row(3, 192, 3.0, **{"rollout/success_rate": 0.5, "rollout/episode_return": 2.0}),
    ]
    s = summarize_training(rows, warmup=1)
    assert s["iterations_measured"] == 2
    assert s["env_steps"] == 128 and s["seconds"] == 4.0
    assert s["env_steps_per_s"] == pytest.approx(32.0)
    assert s["time_fraction"]["sim"] == pytest.approx(0.5)  # (0.5 + 1.5) / 4
    assert s["time_fraction"]["inference"] == pytest.approx(0.25)
    assert s["time_s_per_iteration"]["learner"] == pytest.approx(0.1)
    assert s["time_fraction"]["idle"] == pytest.approx(0.1 / 4)
    assert [c["env_steps"] for c in s["curve"]] == [64, 128, 192]
    assert [c["success_rate"] for c in s["curve"]] == [0.0, None, 0.5]


def test_summarize_training_needs_iterations_after_warmup():
    with pytest.raises(ConfigError, match="train.iterations"):
        summarize_training([_row(1, 10, 1.0)], warmup=1)


def test_expected_async_overlaps_collection_with_the_rest_of_the_iteration():
    # Two sync iterations of 3 s: 2 s waiting for segments, 1 s update + push.
    sync_run = {
        "seconds": 6.0,
        "iterations_measured": 2,
        "time_s_per_iteration": {"driver_wait": 2.0},
    }
    e = expected_async(sync_run)
    assert e["collect_s"] == 2.0 and e["update_s"] == pytest.approx(1.0)
    assert e["async_iteration_s"] == 2.0 and e["speedup"] == pytest.approx(1.5)
    # Learner-bound: 1 s collection, 3 s rest -> 4 s / 3 s.
    e = expected_async(
        {"seconds": 4.0, "iterations_measured": 1, "time_s_per_iteration": {"driver_wait": 1.0}}
    )
    assert e["async_iteration_s"] == 3.0 and e["speedup"] == pytest.approx(4 / 3)


def test_async_expectation_scales_the_sync_ratio_and_keeps_the_measured_one():
    sync = {
        "mode": "sync",
        "seconds": 6.0,
        "iterations_measured": 2,
        "time_s_per_iteration": {"driver_wait": 2.0},
        "ratio_to_sim": 0.4,
    }
    out = async_expectation([sync, {"mode": "async", "ratio_to_sim": 0.45}])
    assert out is not None
    assert out["ratio_to_sim"] == pytest.approx(0.6) and out["measured_async_ratio_to_sim"] == 0.45
    assert async_expectation([{"mode": "async", "ratio_to_sim": 0.45}]) is None


def test_learning_curve_keeps_missing_success_as_none():
    curve = learning_curve([_row(1, 8, 1.0)])
    assert curve == [
        {"iteration": 1, "env_steps": 8.0, "success_rate": None, "episode_return": None}
    ]


def test_summarize_rollout_sums_workers_and_segments():
    timing = {"sim_wait_s": 0.2, "inference_s": 0.3, "weight_swap_s": 0.0, "rollout_total_s": 0.9}
    s = summarize_rollout([40, 40], [1.0, 1.0], [timing, timing])
    assert s["env_steps_per_s"] == pytest.approx(40.0)
    assert s["time_fraction"]["sim"] == pytest.approx(0.2)
    assert s["time_fraction"]["inference"] == pytest.approx(0.3)
    assert s["time_fraction"]["other"] == pytest.approx(0.4)  # 1.8 - 0.4 - 0.6 over 2 s
    assert "cpu" not in s
    s = summarize_rollout([40, 40], [1.0, 1.0], [timing], {"env_process": 0.16, "driver": 0.04})
    assert s["cpu"]["core_ms_per_env_step"] == pytest.approx(2.5)  # 200 ms over 80 steps
    assert s["cpu"]["cores_used"] == pytest.approx(0.1)


def test_summarize_sim_averages_bracketing_runs_and_reports_drift():
    runs = [
        {"num_envs": 2, "chunk_size": 4, "env_steps": 16, "env_steps_per_s": 100.0, "startup_s": 1},
        {"num_envs": 2, "chunk_size": 4, "env_steps": 16, "env_steps_per_s": 50.0, "startup_s": 2},
    ]
    s = summarize_sim(runs)
    assert s["env_steps_per_s"] == 75.0 and s["drift"] == 0.5 and s["env_steps"] == 32


def test_ratio_to_missing_reference_is_none():
    assert ratio(50.0, 200.0) == 0.25 and ratio(1.0, 0.0) is None


def test_bench_settings_reject_unknown_choices_and_empty_measurement():
    with pytest.raises(ConfigError, match="valid choices: local, ray"):
        bench_settings(load_config("bench_train", ["bench.rollout_backends=[gpu]"]))
    with pytest.raises(ConfigError, match="valid choices: sync, async"):
        bench_settings(load_config("bench_train", ["bench.train_modes=[serial]"]))
    with pytest.raises(ConfigError, match="raise train.iterations"):
        bench_settings(load_config("bench_train", ["train.iterations=1"]))
    with pytest.raises(ConfigError, match="use auto"):
        bench_settings(load_config("bench_train", ["bench.pipeline_stages=[1,0]"]))
    stages = bench_settings(load_config("bench_train", ["bench.pipeline_stages=[1,auto]"]))
    assert stages["pipeline_stages"] == [1, "auto"]


TINY_BENCH = [
    "env.num_envs=2",
    "env.max_episode_steps=8",
    "env.reward_mode=dense",
    "train.steps_per_segment=2",
    "train.iterations=2",
    "algo.update_epochs=1",
    "algo.num_minibatches=1",
    "bench.sim_steps=8",
    "bench.sim_warmup_steps=0",
    "bench.rollout_segments=1",
    "runtime.pipeline_probe.block_steps=2",
    "runtime.pipeline_probe.blocks=1",
]


@pytest.mark.e2e
def test_bench_writes_json_png_and_table(tmp_path, capsys):
    assert cli_main(["bench", *TINY_BENCH, f"bench.output_dir={tmp_path}", "bench.tag=t"]) == 0
    report = json.loads((tmp_path / "t.json").read_text())
    assert (tmp_path / "t.png").stat().st_size > 0
    assert {"machine", "config", "settings", "sim", "rollout", "train", "ratios_to_sim"} <= set(
        report
    )
    assert report["machine"]["host"] and report["config"]["num_envs"] == 2
    # paired: one sim run first, then one after each of the 5 measurements
    assert report["sim"]["chunk_size"] == 4 and len(report["sim"]["runs_env_steps_per_s"]) == 6
    assert report["sim"]["env_steps"] == 6 * 16
    assert [(r["backend"], r["pipeline_stages"]) for r in report["rollout"]] == [
        ("local", 1),
        ("local", 2),
        ("local", "auto"),
    ]
    assert [r["effective_stages"] for r in report["rollout"][:2]] == [1, 2]
    auto = report["rollout"][2]
    assert auto["shards_per_worker"] == 2 and auto["effective_stages"] in (1, 2)
    assert auto["pipeline"][0]["schedule"] in ("lockstep", "pipelined")
    assert auto["warmup_segments"] >= 2  # the probe's 4 chunk-steps span segments of 2
    assert [r["mode"] for r in report["train"]] == ["sync", "async"]
    for row in report["train"]:
        assert row["iterations_measured"] == 1 and row["env_steps"] > 0
        assert {"sim", "inference", "learner", "weight_sync", "idle"} <= set(row["time_fraction"])
        assert len(row["curve"]) == 2
    assert set(report["ratios_to_sim"]) == {
        "rollout_local_pipeline1",
        "rollout_local_pipeline2",
        "rollout_local_pipelineauto",
        "train_sync",
        "train_async",
    }
    assert all(v > 0 for v in report["ratios_to_sim"].values())
    out = capsys.readouterr().out
    assert "x sim" in out and "train async" in out
    sims = report["sim"]["runs_env_steps_per_s"]
    second_rollout = report["rollout"][1]
    assert second_rollout["sim_reference_env_steps_per_s"] == pytest.approx((sims[1] + sims[2]) / 2)
    assert second_rollout["ratio_to_sim"] == pytest.approx(
        second_rollout["env_steps_per_s"] / second_rollout["sim_reference_env_steps_per_s"]
    )
    expected = report["async_expected"]
    assert expected["measured_async_ratio_to_sim"] == report["ratios_to_sim"]["train_async"]
    assert expected["ratio_to_sim"] == pytest.approx(
        report["ratios_to_sim"]["train_sync"] * expected["speedup"]
    )
    assert "async expected with spare cores" in out
    table = format_table(report)
    # header, rule, sim, one row per rollout and training run, a learner breakdown per training
    # run, the async expectation, the sim-runs footer
    lines = 2 + 1 + len(report["rollout"]) + 2 * len(report["train"]) + 1 + 1
    assert table.count("\n") == lines - 1
    assert table.count("learner breakdown (") == 2 and "forward" in table


def test_learner_breakdown_sums_phase_timers_and_names_the_rest_other():
    from rl_post.bench.throughput import learner_breakdown

    rows = [
        {
            "learner/time_update_s": 2.0,
            "learner/time_forward_s": 0.8,
            "learner/time_backward_s": 0.6,
            "learner/time_optimizer_s": 0.2,
        },
        {
            "learner/time_update_s": 4.0,
            "learner/time_forward_s": 1.6,
            "learner/time_backward_s": 1.2,
            "learner/time_optimizer_s": 0.4,
        },
    ]
    out = learner_breakdown(rows, env_steps=3000.0)
    assert out["update_s_per_iteration"] == pytest.approx(3.0)
    phases = out["phases"]
    assert list(phases) == ["forward", "backward", "other", "optimizer"]  # largest first
    assert phases["forward"]["fraction_of_update"] == pytest.approx(0.4)
    assert phases["other"]["s_per_iteration"] == pytest.approx(0.6)  # 6 - 4.8 uncovered, / 2
    assert phases["backward"]["ms_per_1k_env_steps"] == pytest.approx(1e6 * 1.8 / 3000)
    assert learner_breakdown([{"x": 1.0}], 10.0) == {}

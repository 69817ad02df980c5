"""`rl-post bench`: system throughput measured in ONE run, reported as ratios to the raw simulator.

For one config and env count it measures, in this order and in this process tree:
  (a) sim      the vector env alone with random actions (same env count, chunk k = model.execute_steps)
  (b) rollout  RolloutWorker.collect_segments with the policy in the loop, per pipeline setting
               (runtime.pipeline_stages) and per backend (in-process, optionally a Ray actor)
  (c) train    the Trainer end to end in each runtime.mode (sync, async); the first
               bench.train_warmup_iterations iterations of each run are left out
  (d) the time breakdown (sim / inference / learner / weight sync / idle) of each of (b) and (c)
It prints a table, and writes JSON (machine, config, numbers, ratios to sim) and a PNG bar chart.
Absolute numbers depend on machine load; the ratios within one run are what to compare. With
bench.sim_paired (default) the simulator is measured again after every measurement and each ratio
uses the mean of the sim runs just before and after it, so load changes mid-run largely cancel.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from rl_post.bench.cpu_time import cpu_seconds_by_kind, cpu_summary, process_tree_times
from rl_post.config import ConfigError

ROLLOUT_BACKENDS = ("local", "ray")
TRAIN_MODES = ("sync", "async")
# Segments of warm-up beyond bench.rollout_warmup_segments that pipeline_stages=auto may take to
# decide (its probe is runtime.pipeline_probe.blocks x 2 blocks of block_steps chunk-steps).
MAX_PROBE_SEGMENTS = 20
# metrics.jsonl key -> breakdown name; sim is the rollout workers' wait on the simulator.
TRAIN_PHASES = {
    "time/sim_s": "sim",
    "time/inference_s": "inference",
    "time/learner_s": "learner",
    "time/weight_sync_s": "weight_sync",
    "time/idle_s": "idle",
    "time/driver_wait_s": "driver_wait",
}


# ---- pure summaries (tested against hand-computed values) ----------------------------------------
def ratio(value: float, reference: float) -> float | None:
    return value / reference if reference > 0 else None


def summarize_training(rows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Throughput and time breakdown of a training run's metrics.jsonl rows, leaving out the first
    `warmup` iterations. Per-iteration env steps are differences of the cumulative perf/env_steps."""
    if len(rows) <= warmup:
        raise ConfigError(
            f"the training run logged {len(rows)} iterations but bench.train_warmup_iterations="
            f"{warmup} are ignored; set train.iterations > bench.train_warmup_iterations"
        )
    previous = [0.0] + [float(r["perf/env_steps"]) for r in rows[:-1]]
    steps = [float(r["perf/env_steps"]) - p for r, p in zip(rows, previous, strict=True)]
    measured = rows[warmup:]
    env_steps = sum(steps[warmup:])
    wall_s = sum(float(r["time/iteration_s"]) for r in measured)
    seconds = {
        name: sum(float(r.get(key) or 0.0) for r in measured) for key, name in TRAIN_PHASES.items()
    }
    return {
        "iterations_measured": len(measured),
        "env_steps": env_steps,
        "seconds": wall_s,
        "env_steps_per_s": env_steps / wall_s if wall_s > 0 else 0.0,
        "time_s_per_iteration": {k: v / len(measured) for k, v in seconds.items()},
        # Fractions of wall time; in async mode collection overlaps the update, so they may sum > 1.
        "time_fraction": {k: (v / wall_s if wall_s > 0 else 0.0) for k, v in seconds.items()},
        "learner_breakdown": learner_breakdown(measured, env_steps),
        "curve": learning_curve(rows),
    }


LEARNER_PHASE_PREFIX, LEARNER_PHASE_SUFFIX = "learner/time_", "_s"


def learner_breakdown(measured: list[dict[str, Any]], env_steps: float) -> dict[str, Any]:
    """Where the learner's time went (the learner's own phase timers, learner/time_<phase>_s):
    seconds per update, share of the whole update (learner/time_update_s), and milliseconds per
    1,000 env steps collected. Phases: data (batch slicing / device copies), forward, loss,
    backward, optimizer, post_update_probe, noise_share, grad_snr; `other` is what no timer
    covers (epoch loop, statistics reduction, Python)."""
    totals: dict[str, float] = {}
    for row in measured:
        for key, value in row.items():
            if key.startswith(LEARNER_PHASE_PREFIX) and key.endswith(LEARNER_PHASE_SUFFIX):
                name = key[len(LEARNER_PHASE_PREFIX) : -len(LEARNER_PHASE_SUFFIX)]
                totals[name] = totals.get(name, 0.0) + float(value or 0.0)
    update = totals.pop("update", 0.0)
    if update <= 0:
        return {}
    totals["other"] = max(0.0, update - sum(totals.values()))
    count = len(measured)
    return {
        "update_s_per_iteration": update / count,
        "phases": {
            name: {
                "s_per_iteration": seconds / count,
                "fraction_of_update": seconds / update,
                "ms_per_1k_env_steps": 1e6 * seconds / env_steps if env_steps > 0 else None,
            }
            for name, seconds in sorted(totals.items(), key=lambda item: -item[1])
        },
    }


def expected_async(sync_run: dict[str, Any]) -> dict[str, Any]:
    """What runtime=async would give where collection and the update do not compete for cores
    (spare cores, or a GPU learner), from a sync run's measured phases: collection (the driver's
    wait for segments) overlaps the rest of the iteration (update, advantages, weight push), so
    an iteration takes max(collect, rest) instead of collect + rest."""
    iteration_s = sync_run["seconds"] / sync_run["iterations_measured"]
    collect_s = min(iteration_s, sync_run["time_s_per_iteration"]["driver_wait"])
    rest_s = iteration_s - collect_s
    overlapped_s = max(collect_s, rest_s)
    return {
        "sync_iteration_s": iteration_s,
        "collect_s": collect_s,
        "update_s": rest_s,
        "async_iteration_s": overlapped_s,
        "speedup": iteration_s / overlapped_s if overlapped_s > 0 else None,
    }


def learning_curve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Success rate and return against cumulative env steps (None where no episode ended)."""
    return [
        {
            "iteration": int(r["iteration"]),
            "env_steps": float(r["perf/env_steps"]),
            "success_rate": r.get("rollout/success_rate"),
            "episode_return": r.get("rollout/episode_return"),
        }
        for r in rows
    ]


def summarize_sim(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """All raw-simulator runs of one benchmark (one, or one between each pair of measurements):
    their mean, and last/first as a sign of load drift during the run."""
    rates = [float(r["env_steps_per_s"]) for r in runs]
    first = runs[0]
    cpu = [float(r["cpu"]["core_ms_per_env_step"]) for r in runs if "cpu" in r]
    return {
        "core_ms_per_env_step": sum(cpu) / len(cpu) if cpu else None,
        "num_envs": first["num_envs"],
        "chunk_size": first["chunk_size"],
        "env_steps": sum(int(r["env_steps"]) for r in runs),
        "env_steps_per_s": sum(rates) / len(rates),
        "runs_env_steps_per_s": rates,
        "drift": rates[-1] / rates[0] if rates[0] > 0 else None,
        "startup_s": first["startup_s"],
    }


def summarize_rollout(
    segment_steps: list[int],
    segment_seconds: list[float],
    timings: list[dict[str, float]],
    cpu_seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Throughput of timed segments; `timings` are the workers' collect_segment timings (summed)."""
    env_steps = float(sum(segment_steps))
    wall_s = float(sum(segment_seconds))
    seconds = {
        "sim": sum(t["sim_wait_s"] for t in timings),
        "inference": sum(t["inference_s"] for t in timings),
        "weight_sync": sum(t["weight_swap_s"] for t in timings),
    }
    seconds["other"] = max(0.0, sum(t["rollout_total_s"] for t in timings) - sum(seconds.values()))
    summary = {
        "segments_measured": len(segment_steps),
        "env_steps": env_steps,
        "seconds": wall_s,
        "env_steps_per_s": env_steps / wall_s if wall_s > 0 else 0.0,
        "time_fraction": {k: (v / wall_s if wall_s > 0 else 0.0) for k, v in seconds.items()},
    }
    if cpu_seconds is not None:
        summary["cpu"] = cpu_summary(cpu_seconds, env_steps, wall_s)
    return summary


# ---- configuration -------------------------------------------------------------------------------
def _check_choices(name: str, values: list[str], valid: tuple[str, ...]) -> None:
    bad = [v for v in values if v not in valid]
    if bad:
        raise ConfigError(f"{name} has unknown entries {bad}; valid choices: {', '.join(valid)}")


def _stage_setting(value: Any) -> int | str:
    """A bench.pipeline_stages entry: an integer >= 1 or auto (checked like runtime.pipeline_stages)."""
    from rl_post.actors.pipeline import AUTO, parse_pipeline_stages

    stages, schedule = parse_pipeline_stages(value)
    return AUTO if schedule == AUTO else stages


def bench_settings(cfg: DictConfig) -> dict[str, Any]:
    bench = cfg.bench
    settings = {
        "sim_steps": int(bench.sim_steps),
        "sim_warmup_steps": int(bench.sim_warmup_steps),
        "pipeline_stages": [_stage_setting(s) for s in bench.pipeline_stages],
        "rollout_backends": [str(b) for b in bench.rollout_backends],
        "rollout_segments": int(bench.rollout_segments),
        "rollout_warmup_segments": int(bench.rollout_warmup_segments),
        "train_modes": [str(m) for m in bench.train_modes],
        "train_warmup_iterations": int(bench.train_warmup_iterations),
        "async_max_staleness": int(bench.async_max_staleness),
        "sim_paired": bool(bench.sim_paired),
    }
    _check_choices("bench.rollout_backends", settings["rollout_backends"], ROLLOUT_BACKENDS)
    _check_choices("bench.train_modes", settings["train_modes"], TRAIN_MODES)
    if settings["sim_steps"] < 1 or settings["rollout_segments"] < 1:
        raise ConfigError("bench.sim_steps and bench.rollout_segments must be >= 1")
    if settings["train_modes"] and int(cfg.train.iterations) <= settings["train_warmup_iterations"]:
        raise ConfigError(
            f"train.iterations={cfg.train.iterations} leaves nothing to measure after "
            f"bench.train_warmup_iterations={settings['train_warmup_iterations']}; raise train.iterations"
        )
    return settings


def describe_config(cfg: DictConfig) -> dict[str, Any]:
    """The settings that identify a benchmark point (also the sweep's merge key)."""
    return {
        "tasks": list(cfg.env.tasks),
        "obs_mode": str(cfg.env.obs_mode),
        "env_backend": str(cfg.env.backend),
        "num_envs": int(cfg.env.num_envs),
        "model": str(cfg.model.name),
        "algo": str(cfg.algo.name),
        "execute_steps": int(cfg.model.execute_steps),
        "steps_per_segment": int(cfg.train.steps_per_segment),
        "num_rollout_workers": int(cfg.runtime.num_rollout_workers),
        "use_ray": bool(cfg.runtime.use_ray),
        "learner_precision": str(cfg.learner.precision),
        "train_iterations": int(cfg.train.iterations),
    }


def default_tag(cfg: DictConfig) -> str:
    return (
        f"throughput_{cfg.env.tasks[0]}_{cfg.env.obs_mode}_{cfg.model.name}_{cfg.algo.name}"
        f"_n{cfg.env.num_envs}"
    )


def machine_description() -> dict[str, Any]:
    from rl_post.bench.sim import machine_info

    return {**machine_info(), "host": platform.node()}


# ---- measurements ----------------------------------------------------------------------------------
def measure_sim(cfg: DictConfig, settings: dict[str, Any]) -> dict[str, Any]:
    from rl_post.bench.sim import measure_sim_throughput

    return measure_sim_throughput(
        cfg.env,
        num_envs=int(cfg.env.num_envs),
        steps=settings["sim_steps"],
        warmup=settings["sim_warmup_steps"],
        chunk_size=int(cfg.model.execute_steps),
    )


def _rollout_pool(cfg: DictConfig, spec: Any, layout: Any, weights: dict, backend: str) -> Any:
    from rl_post.runtime.build import build_local_workers, build_ray_actors, init_ray
    from rl_post.runtime.rollout_pool import LocalRolloutPool, RayRolloutPool

    if backend == "local":
        return LocalRolloutPool(build_local_workers(cfg, spec, layout, weights))
    import ray

    init_ray(cfg.runtime)
    actors = build_ray_actors(cfg, spec, layout, weights)
    ray.get([a.ready.remote() for a in actors], timeout=float(cfg.runtime.startup_timeout_s))
    return RayRolloutPool(actors)


def measure_rollout(
    cfg: DictConfig,
    spec: Any,
    weights: dict,
    stages: int | str,
    backend: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Collect segments with the policy in the loop; every worker collects concurrently. Under
    pipeline_stages=auto the warm-up lasts until every worker's probe has chosen a schedule."""
    from rl_post.runtime.build import plan_layout

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.runtime.pipeline_stages = stages
        cfg.runtime.use_ray = backend == "ray"
    layout = plan_layout(int(cfg.env.num_envs), int(cfg.env.group_size), cfg.runtime)
    steps = int(cfg.train.steps_per_segment)
    warmup = settings["rollout_warmup_segments"]
    segment_steps: list[int] = []
    segment_seconds: list[float] = []
    timings: list[dict[str, float]] = []
    start_s = time.perf_counter()
    pool = _rollout_pool(cfg, spec, layout, weights, backend)
    startup_s = time.perf_counter() - start_s

    def collect(reset: bool) -> tuple[list[Any], float]:
        start = time.perf_counter()
        pending = [pool.submit_collect(w, steps, [reset]) for w in range(len(pool))]
        results = [seg for p in pending for seg in pool.result(p)]
        return results, time.perf_counter() - start

    warmup_segments = 0
    try:
        while warmup_segments < warmup or any(
            r["schedule"] is None for r in pool.call("pipeline_report")
        ):
            if warmup_segments >= warmup + MAX_PROBE_SEGMENTS:
                raise RuntimeError("pipeline_stages=auto did not decide within the bench warm-up")
            collect(reset=warmup_segments == 0 or bool(cfg.train.reset_each_segment))
            warmup_segments += 1
        cpu_before = process_tree_times()
        for _ in range(settings["rollout_segments"]):
            results, elapsed = collect(reset=bool(cfg.train.reset_each_segment))
            segment_steps.append(sum(int(seg.steps.sum()) for seg, _ in results))
            segment_seconds.append(elapsed)
            timings.extend(t for _, t in results)
        cpu_seconds = cpu_seconds_by_kind(cpu_before, process_tree_times())
        reports = pool.call("pipeline_report")
    finally:
        pool.close()
    summary = summarize_rollout(segment_steps, segment_seconds, timings, cpu_seconds)
    summary.update(
        backend=backend,
        pipeline_stages=stages,
        effective_stages=max(int(r["effective_stages"]) for r in reports),
        shards_per_worker=layout.stages,
        pipeline=reports,
        warmup_segments=warmup_segments,
        num_workers=layout.num_workers,
        startup_s=startup_s,
    )
    return summary


def measure_training(cfg: DictConfig, mode: str, settings: dict[str, Any]) -> dict[str, Any]:
    from rl_post.trainer import Trainer

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.runtime.mode = mode
        if mode == "async":
            cfg.runtime.max_staleness = max(
                int(cfg.runtime.max_staleness), settings["async_max_staleness"]
            )
        cfg.name = f"{cfg.name}-bench-{mode}"
    trainer = Trainer(cfg)
    trainer.run()
    rows = [
        json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    summary = summarize_training(rows, settings["train_warmup_iterations"])
    summary.update(
        mode=mode,
        max_staleness=int(cfg.runtime.max_staleness),
        use_ray=bool(cfg.runtime.use_ray),
        run_dir=str(trainer.run_dir),
    )
    return summary


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """All measurements for one config; returns the report (nothing is written)."""
    from rl_post.envs.factory import obs_spec_for
    from rl_post.models.factory import build_policy
    from rl_post.trainer import prepare_config, seed_everything

    settings = bench_settings(cfg)
    cfg = prepare_config(cfg)
    torch.set_num_threads(max(1, int(cfg.runtime.torch_threads)))
    report: dict[str, Any] = {
        "kind": "rl_post.bench.throughput",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "config": describe_config(cfg),
        "settings": settings,
    }
    print(f"[bench] sim: {cfg.env.num_envs} envs, chunk {cfg.model.execute_steps}", flush=True)
    sim_runs = [measure_sim(cfg, settings)]

    def reference_after(row: dict[str, Any]) -> None:
        """Paired: the sim is measured again after each measurement, and the row's reference is the
        mean of the sims just before and after it, so load changes on a shared machine cancel."""
        if settings["sim_paired"]:
            sim_runs.append(measure_sim(cfg, settings))
            pair = sim_runs[-2:]
        else:
            pair = sim_runs[:1]
        reference = sum(float(r["env_steps_per_s"]) for r in pair) / len(pair)
        row["sim_reference_env_steps_per_s"] = reference
        row["ratio_to_sim"] = ratio(row["env_steps_per_s"], reference)

    rollout: list[dict[str, Any]] = []
    if settings["pipeline_stages"] and settings["rollout_backends"]:
        spec = obs_spec_for(cfg.env)
        seed_everything(int(cfg.seed))
        policy = build_policy(cfg.model, spec)
        weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
        for backend in settings["rollout_backends"]:
            for stages in settings["pipeline_stages"]:
                print(f"[bench] rollout: {backend}, pipeline_stages={stages}", flush=True)
                rollout.append(measure_rollout(cfg, spec, weights, stages, backend, settings))
                reference_after(rollout[-1])

    train: list[dict[str, Any]] = []
    for mode in settings["train_modes"]:
        print(f"[bench] train: mode={mode}", flush=True)
        train.append(measure_training(cfg, mode, settings))
        reference_after(train[-1])

    report["sim"] = summarize_sim(sim_runs)
    report["rollout"] = rollout
    report["train"] = train
    report["ratios_to_sim"] = {
        **{
            f"rollout_{r['backend']}_pipeline{r['pipeline_stages']}": r["ratio_to_sim"]
            for r in rollout
        },
        **{f"train_{r['mode']}": r["ratio_to_sim"] for r in train},
    }
    report["async_expected"] = async_expectation(train)
    report["resolved_config"] = OmegaConf.to_container(cfg, resolve=True)
    return report


def async_expectation(train: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The expected async gain from the sync run's phases, next to the measured async ratio."""
    by_mode = {r["mode"]: r for r in train}
    if "sync" not in by_mode:
        return None
    sync = by_mode["sync"]
    expected = expected_async(sync)
    sync_ratio, speedup = sync["ratio_to_sim"], expected["speedup"]
    expected["ratio_to_sim"] = (
        sync_ratio * speedup if sync_ratio is not None and speedup is not None else None
    )
    expected["measured_async_ratio_to_sim"] = by_mode.get("async", {}).get("ratio_to_sim")
    return expected


# ---- output -------------------------------------------------------------------------------------------
def measurement_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per measurement: label, env-steps/s, its sim reference, ratio, time fractions."""
    rows = [
        {
            "label": "sim (random actions), mean",
            "env_steps_per_s": report["sim"]["env_steps_per_s"],
            "sim_reference": report["sim"]["env_steps_per_s"],
            "ratio_to_sim": 1.0,
            "time_fraction": {"sim": 1.0},
            "core_ms_per_env_step": report["sim"].get("core_ms_per_env_step"),
        }
    ]
    for r in report["rollout"]:
        stages = r["pipeline_stages"]
        note = "" if r["effective_stages"] == stages else f" (ran {r['effective_stages']})"
        rows.append(
            {
                "label": f"rollout {r['backend']} pipeline={stages}{note}",
                "env_steps_per_s": r["env_steps_per_s"],
                "sim_reference": r["sim_reference_env_steps_per_s"],
                "ratio_to_sim": r["ratio_to_sim"],
                "time_fraction": r["time_fraction"],
                "core_ms_per_env_step": r.get("cpu", {}).get("core_ms_per_env_step"),
            }
        )
    for r in report["train"]:
        rows.append(
            {
                "label": f"train {r['mode']}",
                "env_steps_per_s": r["env_steps_per_s"],
                "sim_reference": r["sim_reference_env_steps_per_s"],
                "ratio_to_sim": r["ratio_to_sim"],
                "time_fraction": r["time_fraction"],
            }
        )
    return rows


TABLE_PHASES = ("sim", "inference", "learner", "weight_sync", "idle")


def format_table(report: dict[str, Any]) -> str:
    header = (
        f"{'measurement':<34}{'env-steps/s':>12}{'sim ref':>9}{'x sim':>7}{'cpu ms':>8}"
        + "".join(f"{p[:8]:>9}" for p in TABLE_PHASES)
    )
    lines = [
        header + "   (cpu ms: core-ms per env step; time fractions of wall clock)",
        "-" * len(header),
    ]
    for row in measurement_rows(report):
        fractions = row["time_fraction"]
        cells = "".join(
            f"{fractions[p]:>9.2f}" if p in fractions else f"{'-':>9}" for p in TABLE_PHASES
        )
        r = row["ratio_to_sim"]
        ratio_cell = f"{r:>7.2f}" if r is not None else f"{'-':>7}"
        ref = f"{row['sim_reference']:>9.1f}"
        cpu = row.get("core_ms_per_env_step")
        cpu_cell = f"{cpu:>8.2f}" if cpu is not None else f"{'-':>8}"
        lines.append(
            f"{row['label']:<34}{row['env_steps_per_s']:>12.1f}{ref}{ratio_cell}{cpu_cell}{cells}"
        )
    for training in report.get("train", []):
        breakdown = training.get("learner_breakdown") or {}
        if not breakdown:
            continue
        lines.append(
            f"learner breakdown ({training.get('mode')}): "
            f"{breakdown['update_s_per_iteration']:.3f} s per update; "
            + ", ".join(
                f"{name} {phase['fraction_of_update']:.0%}"
                for name, phase in breakdown["phases"].items()
            )
        )
    expected = report.get("async_expected")
    if expected and expected["ratio_to_sim"] is not None:
        measured = expected["measured_async_ratio_to_sim"]
        lines.append(
            f"async expected with spare cores: max(collect {expected['collect_s']:.2f} s, update "
            f"{expected['update_s']:.2f} s) instead of their sum = {expected['speedup']:.2f}x sync "
            f"= {expected['ratio_to_sim']:.2f} x sim"
            + (f" (measured async here: {measured:.2f} x sim)" if measured is not None else "")
        )
    sim = report["sim"]
    runs = ", ".join(f"{r:.1f}" for r in sim["runs_env_steps_per_s"])
    drift = f"; after/before = {sim['drift']:.2f}" if len(sim["runs_env_steps_per_s"]) > 1 else ""
    lines.append(
        f"x sim: ratio to the mean of the sim runs just before and after (sim ref). Sim runs: "
        f"[{runs}] env-steps/s{drift} (far from 1: the load changed during the run)"
    )
    return "\n".join(lines)


def write_report(report: dict[str, Any], output_dir: Path, tag: str, plot: bool) -> dict[str, str]:
    from rl_post.bench.plots import plot_throughput

    output_dir.mkdir(parents=True, exist_ok=True)
    outputs = {"json": str(output_dir / f"{tag}.json")}
    if plot:
        png = output_dir / f"{tag}.png"
        plot_throughput(report, png)
        outputs["png"] = str(png)
    report["outputs"] = outputs
    Path(outputs["json"]).write_text(json.dumps(report, indent=2) + "\n")
    return outputs


def bench_train_main(cfg: DictConfig) -> int:
    report = run_benchmark(cfg)
    print()
    print(format_table(report))
    tag = str(cfg.bench.tag) if cfg.bench.tag else default_tag(cfg)
    outputs = write_report(report, Path(str(cfg.bench.output_dir)), tag, bool(cfg.bench.plot))
    _shutdown_ray()
    print("wrote " + ", ".join(outputs.values()))
    return 0


def _shutdown_ray() -> None:
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()

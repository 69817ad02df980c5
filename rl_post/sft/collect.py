"""`rl-post collect-demos`: motion-planned demonstrations into an appendable HDF5 dataset.

For each task, seeds collect.seed_base, seed_base+1, ... are tried (skipping seeds the file
already holds or already saw fail) until the file holds collect.num_demos successful demos of
the task or collect.max_attempts_factor * num_demos new seeds were tried. Workers (a spawn pool,
one env set per process) plan and convert; the parent alone writes, one episode at a time.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rl_post.config import ConfigError
from rl_post.data.demos import DatasetMeta, DemoWriter, read_info
from rl_post.envs.maniskill_env import describe_env, make_maniskill_env
from rl_post.envs.settings import EnvSettings, parse_env_settings
from rl_post.sft.planner_demo import DemoResult, PlannerDemoMaker, check_planner_task

SEED_LIMIT = 2**31  # ManiSkill seeds must fit numpy's 32-bit seeding


@dataclass(frozen=True)
class CollectSettings:
    path: Path
    num_demos: int
    seed_base: int
    max_attempts_factor: float
    num_workers: int
    max_episode_steps: int


def parse_collect_settings(cfg: DictConfig) -> CollectSettings:
    c = cfg.collect
    settings = CollectSettings(
        path=Path(str(c.path)),
        num_demos=int(c.num_demos),
        seed_base=int(c.seed_base),
        max_attempts_factor=float(c.max_attempts_factor),
        num_workers=int(c.num_workers),
        max_episode_steps=int(c.max_episode_steps),
    )
    if settings.num_demos < 1:
        raise ConfigError(f"collect.num_demos must be >= 1, got {settings.num_demos}")
    if settings.num_workers < 0:
        raise ConfigError("collect.num_workers must be >= 0 (0: collect in this process)")
    if not 0 <= settings.seed_base < SEED_LIMIT:
        raise ConfigError(f"collect.seed_base must be in [0, 2**31), got {settings.seed_base}")
    if settings.max_attempts_factor < 1.0:
        raise ConfigError("collect.max_attempts_factor must be >= 1")
    return settings


def dataset_meta(env: EnvSettings) -> DatasetMeta:
    """Dimensions of the recorded data, read from one built env (first task)."""
    settings = replace(env, num_envs=1)
    probe = make_maniskill_env(env.tasks[0], settings)
    try:
        probe.reset(seed=0)
        description = describe_env(probe, settings)
    finally:
        probe.close()
    return DatasetMeta(
        obs_mode=env.obs_mode,
        control_mode=env.control_mode,
        state_dim=description.state_dim,
        action_dim=description.action_dim,
        cameras=description.cameras,
        image_size=env.image_size if env.wants_rgb else (0, 0),
    )


# --- worker side (one process each; module globals hold that process's envs) -----------------
_makers: dict[str, PlannerDemoMaker] = {}
_worker_env: EnvSettings | None = None
_worker_max_steps = 0


def _init_worker(env: EnvSettings, max_episode_steps: int) -> None:
    global _worker_env, _worker_max_steps
    _worker_env, _worker_max_steps = env, max_episode_steps


def _make_demo(job: tuple[str, int]) -> DemoResult:
    task, seed = job
    assert _worker_env is not None, "_init_worker was not called"
    if task not in _makers:
        _makers[task] = PlannerDemoMaker(task, _worker_env, _worker_max_steps)
    return _makers[task].make(seed)


def _close_makers() -> None:
    for maker in _makers.values():
        maker.close()
    _makers.clear()


def _seeds_to_try(base: int, skip: set[int], count: int, limit: int) -> list[int]:
    seeds: list[int] = []
    seed = base
    while len(seeds) < count and seed < limit:
        if seed not in skip:
            seeds.append(seed)
        seed += 1
    return seeds


def _run_jobs(jobs: list[tuple[str, int]], pool: Any) -> Iterator[DemoResult]:
    if pool is None:
        yield from map(_make_demo, jobs)
    else:
        yield from pool.imap_unordered(_make_demo, jobs)


def collect_task(
    task: str, writer: DemoWriter, settings: CollectSettings, pool: Any, progress: Any
) -> dict[str, int]:
    """Collect until the file holds settings.num_demos demos of `task`; returns counters."""
    have = writer.count(task)
    budget = math.ceil(settings.num_demos * settings.max_attempts_factor)
    tried = writer.tried_seeds(task)
    stats = {"new": 0, "failed": 0, "attempts": 0}
    while have < settings.num_demos and stats["attempts"] < budget:
        want = min(settings.num_demos - have, budget - stats["attempts"])
        seeds = _seeds_to_try(settings.seed_base, tried, want, SEED_LIMIT)
        if not seeds:
            break
        tried.update(seeds)
        for result in _run_jobs([(task, s) for s in seeds], pool):
            stats["attempts"] += 1
            if result.episode is None:
                writer.add_failure(task, result.seed)
                stats["failed"] += 1
                progress.write(f"[collect] {task} seed {result.seed}: {result.reason}")
            else:
                writer.add(result.episode)
                have += 1
                stats["new"] += 1
                progress.update(1)
            progress.set_postfix(task=task, failed=stats["failed"])
    return stats


def collect_demos(env: EnvSettings, settings: CollectSettings) -> dict[str, Any]:
    from rl_post.progress import progress_bar

    for task in env.tasks:
        check_planner_task(task)
    meta = dataset_meta(env)
    started = time.perf_counter()
    report: dict[str, Any] = {"path": str(settings.path), "tasks": {}}
    with DemoWriter(settings.path, meta) as writer:
        missing = sum(max(0, settings.num_demos - writer.count(t)) for t in env.tasks)
        pool = None
        if settings.num_workers > 0 and missing > 0:
            ctx = mp.get_context("spawn")  # fork would copy SAPIEN/PhysX state into children
            pool = ctx.Pool(
                settings.num_workers,
                initializer=_init_worker,
                initargs=(env, settings.max_episode_steps),
            )
        else:
            _init_worker(env, settings.max_episode_steps)
        try:
            with progress_bar(total=missing, desc="demos", unit="demo") as progress:
                for task in env.tasks:
                    report["tasks"][task] = collect_task(task, writer, settings, pool, progress)
                    report["tasks"][task]["total"] = writer.count(task)
            if pool is not None:
                pool.close()
                pool.join()
        finally:
            if pool is not None:
                pool.terminate()
            _close_makers()
    report["seconds"] = time.perf_counter() - started
    new = sum(t["new"] for t in report["tasks"].values())
    report["demos_per_minute"] = 60.0 * new / report["seconds"] if new else 0.0
    return report


def collect_main(cfg: DictConfig) -> int:
    env = parse_env_settings(cfg.env, num_envs=1)
    settings = parse_collect_settings(cfg)
    report = collect_demos(env, settings)
    info = read_info(settings.path)
    for task, stats in report["tasks"].items():
        print(
            f"[collect] {task}: {stats['new']} new demos, {stats['failed']} failed seeds, "
            f"{stats['total']} in file"
        )
    print(
        f"[collect] {settings.path}: {info['num_episodes']} episodes "
        f"({info['obs_mode']}, {info['control_mode']}); {report['seconds']:.1f}s, "
        f"{report['demos_per_minute']:.1f} demos/min"
    )
    return 0

"""Evaluation rollouts: every (task, seed) of a fixed suite runs exactly one episode.

The vector env runs in synchronized reset mode, so a sub-env that finishes waits idle (its
decisions are inactive) until the whole wave is done; then the next wave starts with explicit
seeds. Each sub-env keeps its task (tasks cycle over sub-env indices), so jobs are queued per
task and each wave hands every sub-env the next job of its own task. Sub-envs left without a job
in the last wave replay a seed of their task and their result is ignored.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from rl_post.config import ConfigError
from rl_post.envs.settings import parse_env_settings
from rl_post.envs.spec import EpisodeStats


def eval_env_config(env_cfg: Any, num_envs: int) -> dict[str, Any]:
    """The env config for evaluation: synchronized waves, one sub-env per group."""
    from omegaconf import DictConfig, OmegaConf

    raw = (
        OmegaConf.to_container(env_cfg, resolve=True)
        if isinstance(env_cfg, DictConfig)
        else dict(env_cfg)
    )
    raw.update(num_envs=num_envs, reset_mode="synchronized", group_size=1)
    return raw


def plan_waves(
    env_tasks: Sequence[str], jobs: Sequence[tuple[str, int]]
) -> list[list[tuple[str, int] | None]]:
    """Assign (task, seed) jobs to sub-envs wave by wave; None marks a sub-env without a job."""
    queues: dict[str, deque[tuple[str, int]]] = {}
    for job in jobs:
        queues.setdefault(job[0], deque()).append(job)
    missing = sorted(set(queues) - set(env_tasks))
    if missing:
        raise ValueError(
            f"no sub-env runs task(s) {missing}; env tasks are {sorted(set(env_tasks))}"
        )
    waves = []
    while any(queues.values()):
        wave: list[tuple[str, int] | None] = []
        for task in env_tasks:
            queue = queues.get(task)
            wave.append(queue.popleft() if queue else None)
        waves.append(wave)
    return waves


@torch.no_grad()
def run_wave(
    env: Any,
    policy: Any,
    seeds: list[int],
    wanted: list[bool],
    mode: str,
    execute_steps: int,
    max_decisions: int,
    generator: torch.Generator | None,
) -> dict[int, EpisodeStats]:
    """Reset to `seeds`, act until every wanted sub-env finished once; episodes by sub-env."""
    obs = env.reset(seeds=seeds)
    finished: dict[int, EpisodeStats] = {}
    for _ in range(max_decisions):
        out = policy.act(obs, mode=mode, generator=generator)
        result = env.step_chunk(out.actions.cpu(), execute_steps)
        for episode in result.episodes:
            if wanted[episode.env_index] and episode.env_index not in finished:
                finished[episode.env_index] = episode
        if all(finished.get(i) is not None for i, w in enumerate(wanted) if w):
            return finished
        obs = result.obs
    raise RuntimeError(
        f"evaluation wave did not finish within {max_decisions} decisions; the env should "
        "truncate episodes at env.max_episode_steps"
    )


def check_policy_fits(policy: Any, spec: Any) -> None:
    own = getattr(policy, "spec", None)
    if own is None:
        return
    if (own.state_dim, own.action_dim, len(own.cameras)) != (
        spec.state_dim,
        spec.action_dim,
        len(spec.cameras),
    ):
        raise ConfigError(
            f"the policy was built for state_dim={own.state_dim}, action_dim={own.action_dim}, "
            f"cameras={list(own.cameras)} but the eval env gives state_dim={spec.state_dim}, "
            f"action_dim={spec.action_dim}, cameras={list(spec.cameras)}; evaluate with the env "
            "settings (tasks, obs_mode, control_mode) the policy was trained with"
        )


def auto_num_envs(env_cfg: Any, jobs: int) -> int:
    """eval.num_envs=auto: one CPU sim process per core (at least 4: more waves overlap the
    policy's inference), or the training env count on the GPU backend (one process holds all);
    never more than there are episodes to run."""
    import os

    if str(env_cfg.get("backend", "cpu")) == "gpu":
        wanted = int(env_cfg.get("num_envs", 4))
    else:
        wanted = max(4, os.cpu_count() or 1)
    return max(1, min(wanted, jobs))


def resolve_num_envs(value: Any, env_cfg: Any, jobs: int) -> int:
    if str(value) == "auto":
        return auto_num_envs(env_cfg, jobs)
    if isinstance(value, bool) or int(value) < 1:
        raise ConfigError(f"eval.num_envs must be a positive integer or auto, got {value!r}")
    return min(int(value), jobs)


def eval_env_settings(
    env_cfg: Any, num_envs: int, episodes: int, tasks: Sequence[str] | None = None
) -> tuple[dict[str, Any], Any]:
    """(env config dict, EnvSettings) of the evaluation env: every task once per sub-env cycle,
    at most one sub-env per episode, synchronized waves, one sub-env per group."""
    base = parse_env_settings(env_cfg, tasks=tasks, check_device=False)
    task_list = list(dict.fromkeys(base.tasks))
    n = max(len(task_list), min(int(num_envs), len(task_list) * episodes))
    cfg = eval_env_config(env_cfg, n)
    cfg["tasks"] = task_list
    settings = replace(
        base, num_envs=n, tasks=tuple(task_list), reset_mode="synchronized", group_size=1
    )
    return cfg, settings


def make_eval_env(
    env_cfg: Any, num_envs: int, episodes: int, tasks: Sequence[str] | None = None
) -> Any:
    """The vector env `evaluate_policy(env=...)` runs on; keep it to evaluate again without
    starting its processes anew (the trainer does)."""
    from rl_post.envs.factory import make_vector_env

    cfg, _ = eval_env_settings(env_cfg, num_envs, episodes, tasks)
    return make_vector_env(cfg)


def evaluate_policy(
    policy: Any,
    env_cfg: Any,
    seeds: Sequence[int],
    mode: str = "deterministic",
    num_envs: int = 4,
    metric: str = "success_once",
    confidence: float = 0.95,
    generator_seed: int = 0,
    tasks: Sequence[str] | None = None,
    progress: bool = False,
    progress_file: Any = None,
    env: Any = None,
) -> dict[str, Any]:
    """Run every task of `env_cfg` (or `tasks`) on every seed once; return a JSON-able report.

    report = {"metric", "mode", "seeds", "generator_seed", "num_envs",
              "tasks": {task|"overall": summary dict}, "episodes": [EpisodeStats as dicts]}
    The policy is used as is (put it in eval mode and on its device first). `env`: a vector env
    from `make_eval_env` with the same arguments, reused (and left open); None: one is started
    and closed here. progress_file: where the progress bar draws (default stderr).
    """
    from rl_post.envs.factory import make_vector_env
    from rl_post.eval.stats import summarize_by_task

    cfg, settings = eval_env_settings(env_cfg, num_envs, len(seeds), tasks)
    task_list = list(settings.tasks)
    jobs = [(task, int(seed)) for task in task_list for seed in seeds]
    n = settings.num_envs
    if env is not None and int(env.num_envs) != n:
        raise ValueError(
            f"the given eval env has {env.num_envs} sub-envs but this suite plans {n}; build it "
            "with make_eval_env and the same num_envs / episodes / tasks"
        )
    env_tasks = [settings.task_of(i) for i in range(n)]
    waves = plan_waves(env_tasks, jobs)
    execute_steps = int(policy.execute_steps)
    max_decisions = math.ceil(settings.max_episode_steps / execute_steps) + 1
    # Seeded in both modes: a flow policy's deterministic (ODE) mode still draws its initial noise.
    generator = torch.Generator().manual_seed(generator_seed)
    episodes: list[EpisodeStats] = []
    bar = None
    if progress:
        from rl_post.progress import progress_bar

        bar = progress_bar(
            total=len(jobs), desc=f"eval {mode}", unit="ep", file=progress_file, leave=False
        )
    owned = env is None
    if owned:
        env = make_vector_env(cfg)
    try:
        check_policy_fits(policy, env.spec)
        for wave in waves:
            fallback = {task: seed for task, seed in (j for j in wave if j is not None)}
            seeds_now = [
                job[1] if job else fallback.get(env_tasks[i], int(seeds[0]))
                for i, job in enumerate(wave)
            ]
            wanted = [job is not None for job in wave]
            done = run_wave(
                env, policy, seeds_now, wanted, mode, execute_steps, max_decisions, generator
            )
            for i in sorted(done):
                episodes.append(done[i])
            if bar is not None:
                ok = sum(bool(getattr(e, metric)) for e in episodes)
                # shown at the bar's next redraw (a forced redraw per wave floods log files)
                bar.set_postfix(success=f"{ok}/{len(episodes)}", refresh=False)
                bar.update(sum(wanted))
    finally:
        if owned:
            env.close()
        if bar is not None:
            bar.close()
    summaries = summarize_by_task(episodes, metric, confidence)
    return {
        "metric": metric,
        "mode": mode,
        "confidence": confidence,
        "seeds": [int(s) for s in seeds],
        "generator_seed": int(generator_seed),
        "num_envs": n,
        "tasks": {task: s.as_dict() for task, s in summaries.items()},
        "episodes": [vars(e) for e in sorted(episodes, key=lambda e: (e.task, e.seed))],
    }

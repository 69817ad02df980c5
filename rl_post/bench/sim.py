"""Raw simulator throughput: random actions through the same vector env the trainer uses.

`rl-post bench sim` sweeps obs modes x env counts x chunk sizes (configs/bench.yaml), prints a
table and writes JSON. Chunk size 1 is one env.step per sub-env per call (one IPC round-trip per
step on the CPU backend); larger chunks show what chunked stepping saves.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rl_post.bench.cpu_time import cpu_seconds_by_kind, cpu_summary, process_tree_times
from rl_post.envs.base import VectorEnv
from rl_post.envs.factory import make_vector_env


def _plain(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    return dict(cfg)


def random_actions(env: VectorEnv, horizon: int, generator: torch.Generator) -> torch.Tensor:
    low = torch.tensor(env.spec.action_low, dtype=torch.float32)
    high = torch.tensor(env.spec.action_high, dtype=torch.float32)
    u = torch.rand(env.num_envs, horizon, env.spec.action_dim, generator=generator)
    return low + u * (high - low)


def measure_on_env(
    env: VectorEnv, steps: int, warmup: int, chunk_size: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Time `steps` low-level steps per sub-env (after `warmup`), `chunk_size` steps per call."""
    generator = torch.Generator().manual_seed(seed)
    env.reset()
    for _ in range(max(0, warmup) // chunk_size):
        env.step_chunk(random_actions(env, chunk_size, generator), chunk_size)
    calls = max(1, steps // chunk_size)
    actions = [random_actions(env, chunk_size, generator) for _ in range(calls)]
    env_steps = 0
    episodes = 0
    cpu_before = process_tree_times()
    start = time.perf_counter()
    for chunk in actions:
        result = env.step_chunk(chunk, chunk_size)
        env_steps += int(result.steps.sum())
        episodes += len(result.episodes)
    elapsed = time.perf_counter() - start
    cpu = cpu_summary(cpu_seconds_by_kind(cpu_before, process_tree_times()), env_steps, elapsed)
    return {
        "cpu": cpu,
        "num_envs": env.num_envs,
        "chunk_size": chunk_size,
        "calls": calls,
        "env_steps": env_steps,
        "episodes": episodes,
        "seconds": elapsed,
        "env_steps_per_s": env_steps / elapsed,
        "calls_per_s": calls / elapsed,
    }


def measure_sim_throughput(
    env_cfg: Mapping[str, Any] | DictConfig,
    num_envs: int,
    steps: int,
    warmup: int,
    chunk_size: int = 1,
) -> dict[str, Any]:
    """Build the vector env, measure env-steps/s with random actions, close it."""
    start = time.perf_counter()
    env = make_vector_env(env_cfg, num_envs=num_envs)
    startup_s = time.perf_counter() - start
    try:
        result = measure_on_env(env, steps, warmup, chunk_size)
    finally:
        env.close()
    result["startup_s"] = startup_s
    return result


def machine_info() -> dict[str, Any]:
    import mani_skill

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "mani_skill": getattr(mani_skill, "__version__", "unknown"),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def format_table(rows: list[dict[str, Any]]) -> str:
    header = f"{'obs_mode':<10} {'envs':>5} {'chunk':>6} {'env-steps/s':>12} {'calls/s':>9} {'start s':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['obs_mode']:<10} {r['num_envs']:>5} {r['chunk_size']:>6} "
            f"{r['env_steps_per_s']:>12.1f} {r['calls_per_s']:>9.1f} {r['startup_s']:>8.1f}"
        )
    return "\n".join(lines)


def bench_sim_main(cfg: DictConfig) -> int:
    base_env = _plain(cfg.env)
    rows: list[dict[str, Any]] = []
    for obs_mode in cfg.obs_modes:
        env_cfg = dict(base_env, obs_mode=obs_mode)
        for num_envs in cfg.num_envs_list:
            start = time.perf_counter()
            env = make_vector_env(env_cfg, num_envs=int(num_envs))
            startup_s = time.perf_counter() - start
            try:
                for chunk_size in cfg.chunk_sizes:
                    row = measure_on_env(
                        env, int(cfg.steps), int(cfg.warmup_steps), int(chunk_size)
                    )
                    row.update(obs_mode=obs_mode, startup_s=startup_s)
                    rows.append(row)
                    print(format_table([row]).splitlines()[-1], flush=True)
            finally:
                env.close()
    print()
    print(format_table(rows))
    report = {
        "task": base_env["tasks"][0],
        "tasks": base_env["tasks"],
        "backend": base_env["backend"],
        "control_mode": base_env["control_mode"],
        "image_size": base_env["image_size"],
        "steps": int(cfg.steps),
        "warmup_steps": int(cfg.warmup_steps),
        "machine": machine_info(),
        "results": rows,
    }
    output = Path(str(cfg.output))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"wrote {output}")
    return 0

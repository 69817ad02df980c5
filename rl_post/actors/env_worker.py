"""EnvWorker: a thin Ray shell over a vector-env shard, and handles that hide where a shard lives.

A rollout worker talks to its shards only through `EnvHandle.submit(...)` / `EnvHandle.wait(...)`, so the
same collection loop drives an in-process shard (debug/serial mode) and a Ray actor (distributed mode),
and in both cases simulation of one shard overlaps inference on another.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import torch

from rl_post.envs.spec import ChunkStepResult, Obs


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


class EnvShard:
    """Owns one vector env built from config; what the EnvWorker actor wraps."""

    def __init__(
        self, env_cfg: Any, num_envs: int, seed_offset: int, tasks: list[str] | None = None
    ):
        from rl_post.envs.factory import make_vector_env

        self.env = make_vector_env(env_cfg, num_envs=num_envs, seed_offset=seed_offset, tasks=tasks)
        self.num_envs = num_envs
        self._failure: str | None = None

    def reset(self, seeds: list[int] | None = None) -> Obs:
        try:
            return _to_cpu(self.env.reset(seeds))
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            raise

    def step_chunk(self, actions: torch.Tensor, k: int) -> ChunkStepResult:
        try:
            result = self.env.step_chunk(actions.to(self.env.device), k)
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            raise
        result.obs = _to_cpu(result.obs)
        result.final_obs = _to_cpu(result.final_obs)
        for name in ("reward", "terminated", "truncated", "success", "active", "steps"):
            setattr(result, name, getattr(result, name).cpu())
        return result

    def seed_cursor(self) -> int:
        return self.env.seed_cursor()

    def set_seed_cursor(self, cursor: int) -> None:
        self.env.set_seed_cursor(cursor)

    def ping(self) -> bool:
        """Raises once the vector env has failed (e.g. an env process died), so the rollout worker
        rebuilds this shard instead of retrying on a closed env."""
        if self._failure is not None:
            raise RuntimeError(f"env shard failed: {self._failure}")
        return True

    def worker_pids(self) -> list[int]:
        """Process ids of the CPU backend's env processes (empty for the GPU backend)."""
        return [int(p.pid) for p in getattr(self.env, "_processes", [])]

    def close(self) -> None:
        self.env.close()


class EnvHandle(Protocol):
    def submit(self, method: str, *args: Any) -> Any: ...

    def wait(self, pending: Any) -> Any: ...

    def close(self) -> None: ...


class LocalEnvHandle:
    """In-process shard; one background thread per shard lets simulation overlap inference
    (the CPU backend waits on worker pipes, which releases the GIL)."""

    def __init__(self, shard: EnvShard):
        self.shard = shard
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="env-shard")

    def submit(self, method: str, *args: Any) -> Future:
        return self._pool.submit(getattr(self.shard, method), *args)

    def wait(self, pending: Future) -> Any:
        return pending.result()

    def close(self) -> None:
        try:
            self.shard.close()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)


class RayEnvHandle:
    """A shard living in an EnvWorker actor."""

    def __init__(self, actor: Any):
        self.actor = actor

    def submit(self, method: str, *args: Any) -> Any:
        return getattr(self.actor, method).remote(*args)

    def wait(self, pending: Any) -> Any:
        import ray

        return ray.get(pending)

    def close(self) -> None:
        import ray

        try:
            ray.get(self.actor.close.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - the actor may already be dead; killing it is the goal
            pass
        ray.kill(self.actor, no_restart=True)


def env_worker_actor_class(num_cpus: float, num_gpus: float) -> Any:
    import ray

    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(EnvShard)

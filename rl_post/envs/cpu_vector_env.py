"""CPU backend: N physx_cpu ManiSkill envs, one per worker process (PhysX CPU holds one scene
per process). Workers start with the "forkserver" (default) or "spawn" method; ManiSkill and
Vulkan do not survive fork() of an initialised parent.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import weakref
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from rl_post.envs.chunked import ChunkedVectorEnv, ChunkOutcome, TensorObs
from rl_post.envs.maniskill_env import EnvDescription, build_obs_spec, pad_state
from rl_post.envs.settings import EnvSettings

# Polling interval while waiting for a worker reply; replies are picked up as soon as they arrive,
# this only bounds how quickly a dead worker is noticed.
_LIVENESS_POLL_S = 0.2
# Grace period for a worker to exit after "close" before it is terminated.
_CLOSE_GRACE_S = 5.0


class EnvWorkerError(RuntimeError):
    """An env worker process failed or died; the vector env is closed and must be rebuilt."""


def _shutdown(processes: list[Any], conns: list[Connection]) -> None:
    for conn in conns:
        try:
            conn.send(("close",))
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + _CLOSE_GRACE_S
    for proc in processes:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=_CLOSE_GRACE_S)
        if proc.is_alive():
            proc.kill()
            proc.join()
    for conn in conns:
        conn.close()


class CpuVectorEnv(ChunkedVectorEnv):
    def __init__(self, settings: EnvSettings) -> None:
        ctx = mp.get_context(settings.start_method)
        if settings.start_method == "forkserver":
            ctx.set_forkserver_preload(["rl_post.envs.cpu_worker"])
        from rl_post.envs.cpu_worker import worker_main

        self._timeout_s = settings.worker_timeout_s
        self._start_method = settings.start_method
        self._starting = True
        self._processes: list[Any] = []
        self._conns: list[Connection] = []
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._processes, self._conns)
        tasks = [settings.task_of(i) for i in range(settings.num_envs)]
        try:
            for i, task in enumerate(tasks):
                parent_conn, child_conn = ctx.Pipe()
                proc = ctx.Process(
                    target=worker_main,
                    args=(child_conn, os.getpid(), task, settings),
                    name=f"rl_post-env-{i}-{task}",
                    daemon=True,
                )
                proc.start()
                child_conn.close()
                self._processes.append(proc)
                self._conns.append(parent_conn)
            descriptions: dict[str, EnvDescription] = {}
            for i, task in enumerate(tasks):
                descriptions[task] = self._receive(i, task, expect="ready")
            spec = build_obs_spec(descriptions, settings)
            self._starting = False
        except BaseException:
            self.close()
            raise
        super().__init__(settings, spec, torch.device("cpu"))

    # -- backend hooks -------------------------------------------------------------------------
    def _reset_envs(self, env_ids: list[int], seeds: list[int]) -> TensorObs:
        for i, seed in zip(env_ids, seeds, strict=True):
            self._send(i, ("reset", seed))
        rows = [self._receive(i, self.tasks[i]) for i in env_ids]
        return self._stack_obs(rows)

    def _run_chunk(self, actions: torch.Tensor, budget: torch.Tensor) -> ChunkOutcome:
        n = self.num_envs
        actions_np = actions.cpu().numpy()
        running = [i for i in range(n) if int(budget[i]) > 0]
        for i in running:
            b = int(budget[i])
            self._send(i, ("chunk", np.ascontiguousarray(actions_np[i, :b]), b))
        reward = torch.zeros(n, dtype=torch.float32)
        terminated = torch.zeros(n, dtype=torch.bool)
        success = torch.zeros(n, dtype=torch.bool)
        success_any = torch.zeros(n, dtype=torch.bool)
        steps = torch.zeros(n, dtype=torch.int64)
        milestones: dict[str, torch.Tensor] = {}
        replies = {i: self._receive(i, self.tasks[i]) for i in running}
        obs = {key: value.clone() for key, value in self._obs.items()}  # rows of idle sub-envs
        if running:
            rows = self._stack_obs([replies[i]["obs"] for i in running])
            ids = torch.tensor(running, dtype=torch.int64)
            for key, value in rows.items():
                obs[key][ids] = value
        for i, reply in replies.items():
            reward[i] = reply["reward"]
            terminated[i] = reply["terminated"]
            success[i] = reply["success"]
            success_any[i] = reply["success_any"]
            steps[i] = reply["steps"]
            # a multi-task env's tasks have different flags: a task without one never reaches it
            for name, reached in reply.get("milestones", {}).items():
                milestones.setdefault(name, torch.zeros(n, dtype=torch.bool))[i] = reached
        return ChunkOutcome(obs, reward, terminated, success, success_any, steps, milestones)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finalizer()

    # -- process plumbing ----------------------------------------------------------------------
    def _stack_obs(self, rows: list[dict[str, np.ndarray]]) -> TensorObs:
        state_dim = self.spec.state_dim
        out = {
            "state": torch.stack([pad_state(torch.from_numpy(r["state"]), state_dim) for r in rows])
        }
        if "rgb" in rows[0]:
            out["rgb"] = torch.from_numpy(np.stack([r["rgb"] for r in rows]))
        return out

    def _send(self, i: int, message: tuple) -> None:
        if self._closed:
            raise EnvWorkerError("the vector env is closed; build a new one")
        try:
            self._conns[i].send(message)
        except (BrokenPipeError, OSError) as exc:
            self._fail(i, self.tasks[i], f"could not be reached ({exc})")

    def _receive(self, i: int, task: str, expect: str = "ok") -> Any:
        conn, proc = self._conns[i], self._processes[i]
        deadline = time.monotonic() + self._timeout_s
        while not conn.poll(_LIVENESS_POLL_S):
            if not proc.is_alive():
                self._fail(i, task, "died")
            if time.monotonic() > deadline:
                self._fail(i, task, f"did not answer within {self._timeout_s:.0f} s")
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            self._fail(i, task, "died")
        if kind == "error":
            self._fail(i, task, f"raised an error:\n{payload}")
        if kind != expect:
            self._fail(i, task, f"sent an unexpected reply {kind!r}")
        return payload

    def _fail(self, i: int, task: str, what: str) -> None:
        proc = self._processes[i]
        self.close()
        if what == "died":
            what = f"died (exit code {proc.exitcode})"
            if self._starting:
                what += (
                    " while starting. Workers start with the "
                    f"'{self._start_method}' method, which re-imports the __main__ module: a "
                    "script that builds envs at import time needs an "
                    "`if __name__ == '__main__':` guard"
                )
        raise EnvWorkerError(
            f"env worker {i} ({task}, pid {proc.pid}) {what}. The vector env was closed; build a "
            "new one to continue"
        )

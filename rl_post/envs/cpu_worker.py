"""Body of one CPU env worker process: a single physx_cpu ManiSkill env.

The parent sends whole action chunks; the worker executes up to `budget` actions locally and
answers once per chunk, so inter-process traffic is one round-trip per decision, not per step.
Messages (parent -> worker): ("reset", seed), ("chunk", actions[budget, A], budget), ("close",).
Replies: ("ready", EnvDescription) once after start, then ("ok", payload) or ("error", traceback).
"""

from __future__ import annotations

import os
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

# Imported at module level so a forkserver that preloads this module has ManiSkill imported
# already and forked workers start in about a second instead of re-importing everything.
import mani_skill.envs  # noqa: F401
import numpy as np
import torch

from rl_post.envs.maniskill_env import (
    current_obs,
    describe_env,
    make_maniskill_env,
    refresh_contacts,
    run_chunk_batched,
)
from rl_post.envs.settings import EnvSettings

# How often an idle worker checks that its parent still exists (it exits when orphaned).
PARENT_CHECK_INTERVAL_S = 2.0


def _parent_alive(parent_pid: int) -> bool:
    # Not os.getppid(): under forkserver the worker's OS parent is the fork server, not the
    # process that owns the vector env. A dead owner also closes its pipe end (EOF on recv).
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _numpy_obs(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {key: value[0].cpu().numpy() for key, value in obs.items()}


def reset_single(env: Any, settings: EnvSettings, seed: int) -> dict[str, np.ndarray]:
    env.reset(seed=int(seed))
    refresh_contacts(env)
    return _numpy_obs(current_obs(env, settings))


def run_chunk_single(
    env: Any, settings: EnvSettings, actions: np.ndarray, budget: int
) -> dict[str, Any]:
    """Execute up to `budget` actions, stopping at termination unless terminations are ignored."""
    out = run_chunk_batched(
        env, settings, torch.from_numpy(actions).unsqueeze(0), torch.tensor([budget])
    )
    return dict(
        obs=_numpy_obs(out.obs),
        reward=float(out.reward[0]),
        terminated=bool(out.terminated[0]),
        success=bool(out.success[0]),
        success_any=bool(out.success_any[0]),
        steps=int(out.steps[0]),
        milestones={name: bool(reached[0]) for name, reached in out.milestones.items()},
    )


def worker_main(conn: Connection, parent_pid: int, task: str, settings: EnvSettings) -> None:
    torch.set_num_threads(1)  # one process per core already; extra threads only contend
    # Ctrl-C in a terminal reaches the whole process group; the owner decides when workers stop
    # (it first writes a final checkpoint, which needs them alive).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        env = make_maniskill_env(task, settings)
        conn.send(("ready", describe_env(env, settings)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    try:
        while True:
            if not conn.poll(PARENT_CHECK_INTERVAL_S):
                if not _parent_alive(parent_pid):
                    return
                continue
            message = conn.recv()
            command = message[0]
            if command == "close":
                return
            try:
                if command == "reset":
                    payload: Any = reset_single(env, settings, message[1])
                elif command == "chunk":
                    payload = run_chunk_single(env, settings, message[1], message[2])
                else:
                    raise ValueError(f"unknown env worker command {command!r}")
                conn.send(("ok", payload))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        env.close()

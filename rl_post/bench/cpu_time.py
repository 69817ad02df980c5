"""CPU seconds spent by this process tree during a measurement, by kind of process.

Wall-clock ratios drift with the load of a shared machine; CPU time per env step does much less,
and it says where the cycles go: the env processes (the simulator), this process (driver:
inference and IPC in serial runs), Ray actors (rollout worker, EnvWorker) and Ray's own daemons.
"""

from __future__ import annotations

from typing import Any

import psutil

ProcessTimes = dict[int, tuple[str, float]]


def classify(cmdline: str, is_self: bool) -> str:
    """The kind of a process of the tree, from its command line."""
    if is_self:
        return "driver"
    if "multiprocessing" in cmdline or "forkserver" in cmdline:
        return "env_process"
    if "ray::RolloutActor" in cmdline:
        return "rollout_actor"
    if "ray::EnvShard" in cmdline:
        return "env_actor"
    if "ray::" in cmdline:
        return "ray_actor_other"
    if "ray" in cmdline:
        return "ray_system"
    return "other"


def process_tree_times() -> ProcessTimes:
    """pid -> (kind, user + system CPU seconds so far) for this process and all descendants."""
    me = psutil.Process()
    out: ProcessTimes = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            kind = classify(" ".join(proc.cmdline()), proc.pid == me.pid)
        except psutil.Error:  # exited between listing and reading
            continue
        out[proc.pid] = (kind, float(times.user + times.system))
    return out


def cpu_seconds_by_kind(before: ProcessTimes, after: ProcessTimes) -> dict[str, float]:
    """CPU seconds per kind between two snapshots; a process born in between counts from zero
    (its whole life is inside the interval), one that died in between is lost (not measurable)."""
    seconds: dict[str, float] = {}
    for pid, (kind, total) in after.items():
        start = before.get(pid, (kind, 0.0))[1]
        seconds[kind] = seconds.get(kind, 0.0) + max(0.0, total - start)
    return seconds


def cpu_summary(seconds: dict[str, float], env_steps: float, wall_s: float) -> dict[str, Any]:
    total = sum(seconds.values())
    per_step = 1000.0 / env_steps if env_steps > 0 else 0.0
    return {
        "cpu_s": total,
        "cores_used": total / wall_s if wall_s > 0 else 0.0,
        "core_ms_per_env_step": total * per_step,
        "core_ms_per_env_step_by_kind": {k: v * per_step for k, v in sorted(seconds.items())},
    }

"""Gathers the segments of one update from the rollout pool, in sync or async mode.

sync:  launch collection on every worker with the current weights, wait, return (fully on-policy).
With `segments_per_update` = K > 1 every worker collects K segments back to back, so one update sees
K x num_envs x steps_per_segment decisions: a large batch without more env processes (on a CPU,
envs beyond the core count add memory, not throughput).
async: every worker always has one collection in flight; a worker whose batch is taken is relaunched
       at once, so collection of the next batch overlaps the learner's update of this one. Decisions
       produced by weights older than `max_staleness` versions are masked out and counted.

A worker's K segments of one update are ONE call (`collect_segments`), not K calls: were they
launched one by one, only the first segment of the next batch could be in flight during the update
and async iterations would take max(collect/K, update) + collect*(K-1)/K instead of
max(collect, update).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from rl_post.data.segment import Segment


@dataclass
class GatherResult:
    segments: list[Segment]
    worker_timings: list[dict[str, float]]
    wait_s: float
    stale_dropped: int
    max_lag: int
    events: list[str] = field(default_factory=list)
    # rollout worker that produced each segment (segments are worker-major, in collection order)
    worker_of: list[int] = field(default_factory=list)


def mask_stale(segment: Segment, current_version: int, max_staleness: int) -> tuple[int, int]:
    """Deactivate decisions older than `max_staleness` versions; returns (dropped, max lag seen)."""
    lag = current_version - segment.version
    stale = (lag > max_staleness) & segment.active
    segment.active = segment.active & ~stale
    return int(stale.sum()), int(lag.max()) if lag.numel() else 0


class SegmentCollector:
    def __init__(
        self,
        pool: Any,
        steps_per_segment: int,
        reset_each_segment: bool,
        mode: str,
        max_staleness: int,
        segments_per_update: int = 1,
    ):
        if mode not in {"sync", "async"}:
            raise ValueError(f"collector mode must be sync or async, got {mode!r}")
        if segments_per_update < 1:
            raise ValueError(f"segments_per_update must be >= 1, got {segments_per_update}")
        self.segments_per_update = segments_per_update
        self.pool = pool
        self.steps_per_segment = steps_per_segment
        self.reset_each_segment = reset_each_segment
        self.mode = mode
        self.max_staleness = max_staleness if mode == "async" else 0
        self._in_flight: list[Any] = [None] * len(pool)
        self._first = True

    def _launch(self, index: int) -> None:
        first = self.reset_each_segment or self._first
        resets = [first] + [self.reset_each_segment] * (self.segments_per_update - 1)
        self._in_flight[index] = self.pool.submit_collect(index, self.steps_per_segment, resets)

    def gather(self, current_version: int) -> GatherResult:
        start = time.perf_counter()
        for i in range(len(self.pool)):
            if self._in_flight[i] is None:
                self._launch(i)
        self._first = False
        per_worker: list[list[tuple[Segment, dict[str, float]]] | None] = [None] * len(self.pool)
        while any(r is None for r in per_worker):
            # A worker that has delivered keeps its next (async) batch in flight for the next update.
            needed = [p if per_worker[i] is None else None for i, p in enumerate(self._in_flight)]
            for i in self.pool.ready(needed):
                per_worker[i] = self.pool.result(self._in_flight[i])
                self._in_flight[i] = None
                if self.mode == "async":
                    self._launch(i)
        wait_s = time.perf_counter() - start
        # Worker-major order: worker 0's segments first, in collection order.
        delivered = [results for results in per_worker if results is not None]
        segments = [segment for results in delivered for segment, _ in results]
        worker_of = [i for i, results in enumerate(delivered) for _ in results]
        timings = [_sum_timings([t for _, t in results]) for results in delivered]
        dropped, max_lag = 0, 0
        for segment in segments:
            d, lag = mask_stale(segment, current_version, self.max_staleness)
            dropped += d
            max_lag = max(max_lag, lag)
        events = [e for batch in self.pool.call("pop_events") for e in batch]
        return GatherResult(segments, timings, wait_s, dropped, max_lag, events, worker_of)

    def drain(self) -> None:
        """Wait for in-flight collections (before checkpointing or shutdown) and discard them."""
        for i, pending in enumerate(self._in_flight):
            if pending is not None:
                try:
                    self.pool.result(pending)
                except Exception:  # noqa: BLE001 - draining on shutdown; the run is ending anyway
                    pass
                self._in_flight[i] = None
        self._first = True


def _sum_timings(timings: list[dict[str, float]]) -> dict[str, float]:
    """One worker's timings over its segments of this update."""
    return {key: sum(t[key] for t in timings) for key in timings[0]}


def merge_gathered(gather: GatherResult, continuing: bool) -> Segment:
    """One update's segments as one [T, N] segment.

    continuing=True (episodes carry over from one segment to the next, the PPO default): a
    worker's consecutive segments are joined in TIME, so GAE runs through the segment boundary
    instead of bootstrapping from V(obs) there; workers are then joined along the env axis.
    continuing=False (every segment starts fresh episodes): all are joined along the env axis.
    """
    if not continuing or len(set(gather.worker_of)) == len(gather.segments):
        return merge_segments(gather.segments)
    by_worker: dict[int, list[Segment]] = {}
    for worker, segment in zip(gather.worker_of, gather.segments, strict=True):
        by_worker.setdefault(worker, []).append(segment)
    return merge_segments([merge_segments_in_time(parts) for parts in by_worker.values()])


def merge_segments_in_time(segments: list[Segment]) -> Segment:
    """Concatenate consecutive segments of the SAME envs along time: [T1 + T2 + ..., N]."""
    if len(segments) == 1:
        return segments[0]
    first = segments[0]
    for later in segments[1:]:
        if later.instructions != first.instructions or later.num_envs != first.num_envs:
            raise ValueError(
                "segments joined in time must come from the same envs in the same order "
                f"({first.num_envs} vs {later.num_envs} envs)"
            )
    return _merge(
        segments, dim=0, last_value=segments[-1].last_value, instructions=first.instructions
    )


def merge_segments(segments: list[Segment]) -> Segment:
    """Concatenate segments of equal length along the env axis."""
    if len(segments) == 1:
        return segments[0]
    return _merge(
        segments,
        dim=1,
        last_value=torch.cat([s.last_value for s in segments]),
        instructions=[text for s in segments for text in s.instructions],
    )


def _merge(
    segments: list[Segment], dim: int, last_value: torch.Tensor, instructions: list[str]
) -> Segment:
    first = segments[0]

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(s, name) for s in segments], dim=dim)

    return Segment(
        obs={k: torch.cat([s.obs[k] for s in segments], dim=dim) for k in first.obs},
        instructions=instructions,
        actions=cat("actions"),
        stored={k: torch.cat([s.stored[k] for s in segments], dim=dim) for k in first.stored},
        logprob=cat("logprob"),
        value=cat("value"),
        reward=cat("reward"),
        terminated=cat("terminated"),
        truncated=cat("truncated"),
        active=cat("active"),
        bootstrap_value=cat("bootstrap_value"),
        last_value=last_value,
        version=cat("version"),
        group_id=cat("group_id"),
        success=cat("success"),
        steps=cat("steps"),
        episodes=[e for s in segments for e in s.episodes],
        end_obs={k: torch.cat([s.end_obs[k] for s in segments], dim=dim) for k in first.end_obs},
    )

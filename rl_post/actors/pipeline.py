"""How a rollout worker schedules its env shards per chunk-step, and how `auto` picks a schedule.

Two schedules over the same S shards (S = runtime.pipeline_stages, or 2 under `auto`):
  pipelined  per shard: wait for its chunk, infer its next actions, send them; shard s+1 simulates
             while shard s infers. Hides inference when a core (or a GPU) would otherwise idle.
  lockstep   wait for every shard, infer all envs in ONE batched call, send every shard its actions:
             one pipeline stage. Wins when the env processes already keep every core busy: then
             inference can only steal cores from the simulator, and S calls of batch N/S cost
             more than one call of batch N (a tiny policy's act() is mostly fixed per-call cost).
Which one is faster depends on cores, load, model and env count, so `auto` measures both: the
first probe steps alternate blocks of each schedule, the wall time between the starts of
successive chunk-steps is recorded (the first step of every block is a transition and the first of
every segment waits for nothing: both are left out),
and the schedule with the lower median period wins; pipelining must be faster by `min_gain` to be
chosen, since lockstep makes fewer calls.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from rl_post.config import ConfigError

PIPELINED = "pipelined"
LOCKSTEP = "lockstep"
AUTO = "auto"
# `auto` builds this many shards per worker and chooses between pipelining them and lockstep.
AUTO_STAGES = 2


def parse_pipeline_stages(value: object) -> tuple[int, str]:
    """runtime.pipeline_stages -> (shards per worker, schedule). An integer S > 1 pipelines S
    shards, 1 is one shard, `auto` builds AUTO_STAGES shards and picks the schedule by measuring."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO_STAGES, AUTO
    try:
        stages = int(str(value))
    except ValueError:
        stages = 0
    if stages < 1:
        raise ConfigError(
            f"runtime.pipeline_stages={value!r}: use auto (measure and pick) or an integer >= 1 "
            "(env shards per rollout worker, pipelined; 1: no pipelining)"
        )
    return stages, PIPELINED if stages > 1 else LOCKSTEP


@dataclass(frozen=True)
class ProbeSettings:
    block_steps: int = 4  # consecutive chunk-steps per schedule before switching
    blocks: int = 3  # blocks of each schedule
    min_gain: float = 0.03  # pipelined must be this fraction faster than lockstep to be chosen

    def __post_init__(self) -> None:
        if self.block_steps < 2 or self.blocks < 1 or not 0.0 <= self.min_gain < 1.0:
            raise ConfigError(
                "runtime.pipeline_probe needs block_steps >= 2 (the first step of a block is not "
                f"timed), blocks >= 1 and 0 <= min_gain < 1; got {self}"
            )


def probe_schedule(step: int, settings: ProbeSettings) -> str | None:
    """The schedule of probe step `step` (lockstep block first), or None once the probe is over."""
    block = step // settings.block_steps
    if block >= 2 * settings.blocks:
        return None
    return LOCKSTEP if block % 2 == 0 else PIPELINED


def choose_schedule(
    lockstep_periods: list[float], pipelined_periods: list[float], min_gain: float
) -> str:
    """Pipelined only when its median chunk-step period beats lockstep's by `min_gain`."""
    if not lockstep_periods or not pipelined_periods:
        return LOCKSTEP
    lockstep = statistics.median(lockstep_periods)
    pipelined = statistics.median(pipelined_periods)
    return PIPELINED if pipelined < (1.0 - min_gain) * lockstep else LOCKSTEP


@dataclass
class PipelineProbe:
    """Drives `auto`: which schedule each chunk-step uses while probing, the timed periods, and
    the decision. A period is the time from one chunk-step's start to the next one's, in one segment."""

    settings: ProbeSettings
    step: int = 0
    periods: dict[str, list[float]] = field(default_factory=lambda: {LOCKSTEP: [], PIPELINED: []})
    _last_start: float | None = None
    _last_timed: bool = False  # whether the previous step's period is representative
    _segment_start: bool = True

    @property
    def done(self) -> bool:
        return probe_schedule(self.step, self.settings) is None

    def next_step(self, now: float) -> str | None:
        """Called at the start of every full chunk-step while probing (`now`: perf_counter);
        returns the schedule to use for it, or None when the probe has just ended."""
        if self._last_start is not None and self._last_timed:
            schedule = probe_schedule(self.step - 1, self.settings)
            assert schedule is not None
            self.periods[schedule].append(now - self._last_start)
        schedule = probe_schedule(self.step, self.settings)
        if schedule is None:
            return None
        # Not timed: a block's first step (a transition from the other schedule) and a segment's
        # first step (it starts with no chunk in flight, so it waits for nothing).
        self._last_timed = self.step % self.settings.block_steps != 0 and not self._segment_start
        self._last_start, self._segment_start = now, False
        self.step += 1
        return schedule

    def segment_ended(self) -> None:
        """The next step starts after the driver's round trip: no period across it."""
        self._last_start, self._segment_start = None, True

    def decide(self) -> str:
        return choose_schedule(
            self.periods[LOCKSTEP], self.periods[PIPELINED], self.settings.min_gain
        )

    def summary(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for name, values in self.periods.items():
            out[f"{name}_samples"] = len(values)
            if values:
                out[f"{name}_median_s"] = statistics.median(values)
        return out

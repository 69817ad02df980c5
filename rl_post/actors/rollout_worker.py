"""RolloutWorker: an inference copy of the policy driving its env shards, producing Segments.

A worker's envs are split into shards. Pipelined, shards are pipeline stages: while stage s
simulates its chunk, the policy already infers the actions of stage s+1, so on a GPU the simulator
and the inference kernels overlap, and on a CPU with spare cores inference fills the cores the env
processes leave idle. In lockstep, every shard is waited for and all envs are inferred in one
batched call (one stage). `auto` measures both and keeps the faster (pipeline.py). New weights are
swapped in between chunk-steps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rl_post.actors.env_worker import EnvHandle
from rl_post.actors.pipeline import (
    AUTO,
    LOCKSTEP,
    PIPELINED,
    PipelineProbe,
    ProbeSettings,
)
from rl_post.data.segment import Segment
from rl_post.envs.spec import ChunkStepResult, EpisodeStats

log = logging.getLogger(__name__)

MAX_SHARD_RESTARTS_PER_SEGMENT = 3


def select_obs(obs: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
    rows = index.tolist()
    picked: dict[str, Any] = {}
    for key, value in obs.items():
        if isinstance(value, torch.Tensor):
            picked[key] = value[index]
        elif isinstance(value, list):
            picked[key] = [value[i] for i in rows]
    return picked


def concat_obs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, value in parts[0].items():
        if isinstance(value, torch.Tensor):
            merged[key] = torch.cat([p[key] for p in parts], dim=0)
        elif isinstance(value, list):
            merged[key] = [item for p in parts for item in p[key]]
    return merged


def obs_to_device(obs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in obs.items()}


@dataclass
class _StageBuffer:
    """Per-stage records of one segment; lists over chunk-steps."""

    obs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    actions: list[torch.Tensor] = field(default_factory=list)
    stored: list[dict[str, torch.Tensor]] = field(default_factory=list)
    logprob: list[torch.Tensor] = field(default_factory=list)
    value: list[torch.Tensor] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    results: list[ChunkStepResult] = field(default_factory=list)
    bootstrap_value: list[torch.Tensor] = field(default_factory=list)
    end_obs: list[dict[str, torch.Tensor]] = field(default_factory=list)
    group_id: list[torch.Tensor] = field(default_factory=list)


@dataclass
class RolloutTimings:
    inference_s: float = 0.0
    sim_wait_s: float = 0.0
    weight_swap_s: float = 0.0
    total_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "inference_s": self.inference_s,
            "sim_wait_s": self.sim_wait_s,
            "weight_swap_s": self.weight_swap_s,
            "rollout_total_s": self.total_s,
        }


class RolloutWorker:
    """Plain class (works without Ray). `shard_factory(i)` builds shard i's EnvHandle; it is also how a
    crashed shard is rebuilt and re-seeded."""

    def __init__(
        self,
        policy: torch.nn.Module,
        shard_factory: Callable[[int], EnvHandle],
        shard_sizes: list[int],
        execute_steps: int,
        group_size: int,
        global_env_offset: int,
        total_envs: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        act_mode: str = "stochastic",
        store_end_obs: bool = False,
        bootstrap_terminations: bool = False,
        schedule: str = PIPELINED,
        probe_settings: ProbeSettings | None = None,
    ):
        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.shard_factory = shard_factory
        self.shard_sizes = list(shard_sizes)
        self.shards: list[EnvHandle] = [shard_factory(i) for i in range(len(shard_sizes))]
        self.execute_steps = execute_steps
        self.group_size = group_size
        self.global_env_offset = global_env_offset
        self.total_groups = max(1, total_envs // group_size)
        self.act_mode = act_mode
        self.store_end_obs = store_end_obs
        self.bootstrap_terminations = bootstrap_terminations
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.version = 0
        self._pending_weights: tuple[int, dict[str, torch.Tensor]] | None = None
        self._lock = threading.Lock()
        self._stage_obs: list[dict[str, Any] | None] = [None] * len(self.shards)
        self._episode_index = [torch.zeros(n, dtype=torch.long) for n in self.shard_sizes]
        self._seed_cursors = [0] * len(self.shards)
        self.events: list[str] = []
        self.finished_episodes: list[EpisodeStats] = []
        if schedule not in (PIPELINED, LOCKSTEP, AUTO):
            raise ValueError(
                f"schedule must be {PIPELINED}, {LOCKSTEP} or {AUTO}, got {schedule!r}"
            )
        if len(self.shards) == 1:
            schedule = LOCKSTEP  # one shard: both schedules are the same loop
        # `auto` probes both schedules over its first chunk-steps (see pipeline.py).
        self._probe = PipelineProbe(probe_settings or ProbeSettings()) if schedule == AUTO else None
        self.schedule = LOCKSTEP if schedule == AUTO else schedule
        self.probe_summary: dict[str, float | int] = {}

    # ---- weights -------------------------------------------------------------------------------
    def set_weights(self, version: int, state: dict[str, torch.Tensor]) -> int:
        """Queue new weights; they are loaded at the next chunk-step boundary."""
        with self._lock:
            self._pending_weights = (version, state)
        return version

    def _maybe_swap_weights(self, timings: RolloutTimings) -> None:
        with self._lock:
            pending, self._pending_weights = self._pending_weights, None
        if pending is None:
            return
        start = time.perf_counter()
        version, state = pending
        self.policy.load_state_dict(state, strict=False)
        self.version = version
        timings.weight_swap_s += time.perf_counter() - start

    # ---- state for checkpoints ----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        cursors = [
            self.shards[i].wait(self.shards[i].submit("seed_cursor"))
            for i in range(len(self.shards))
        ]
        probe = self._probe
        return {
            "generator": self.generator.get_state(),
            "seed_cursors": cursors,
            "version": self.version,
            # A resumed run keeps the schedule `auto` chose (or continues its probe), so it draws
            # the same noise as the uninterrupted run would have.
            "pipeline": {
                "schedule": self.schedule if probe is None else None,
                "probe_step": probe.step if probe is not None else None,
                "probe_periods": probe.periods if probe is not None else None,
                "probe_summary": dict(self.probe_summary),
            },
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.version = int(state["version"])
        self._load_pipeline_state(state.get("pipeline"))
        for i, cursor in enumerate(state["seed_cursors"]):
            self.shards[i].wait(self.shards[i].submit("set_seed_cursor", int(cursor)))
            self._seed_cursors[i] = int(cursor)
        self._stage_obs = [None] * len(self.shards)

    def _load_pipeline_state(self, pipeline: dict[str, Any] | None) -> None:
        if pipeline is None or len(self.shards) == 1:
            return  # checkpoint from before `auto` existed, or nothing to choose
        if pipeline["schedule"] is not None:
            self.schedule, self._probe = str(pipeline["schedule"]), None
            self.probe_summary = dict(pipeline["probe_summary"])
        elif self._probe is not None:
            self._probe.step = int(pipeline["probe_step"])
            self._probe.periods = {k: list(v) for k, v in pipeline["probe_periods"].items()}

    # ---- collection ----------------------------------------------------------------------------
    def collect_segment(
        self, num_steps: int, reset: bool = False
    ) -> tuple[Segment, dict[str, float]]:
        """Run `num_steps` chunk-steps on every shard; `reset` starts every episode afresh first."""
        for attempt in range(MAX_SHARD_RESTARTS_PER_SEGMENT + 1):
            try:
                return self._collect(num_steps, reset)
            except Exception as exc:  # noqa: BLE001 - a dead env process surfaces as many error types
                failed = self._find_dead_shards()
                if not failed or attempt == MAX_SHARD_RESTARTS_PER_SEGMENT:
                    raise
                for i in failed:
                    self._restart_shard(i, exc)
                reset = True
        raise RuntimeError("unreachable")

    def collect_segments(
        self, num_steps: int, resets: list[bool]
    ) -> list[tuple[Segment, dict[str, float]]]:
        """Collect len(resets) segments back to back in one call; segment j starts fresh episodes
        when resets[j]. One call per update keeps a worker busy for a whole batch without the
        driver relaunching it, so in async mode the update overlaps all of the next batch."""
        return [self.collect_segment(num_steps, reset) for reset in resets]

    def _find_dead_shards(self) -> list[int]:
        dead = []
        for i, shard in enumerate(self.shards):
            try:
                shard.wait(shard.submit("ping"))
            except Exception:  # noqa: BLE001
                dead.append(i)
        return dead

    def _restart_shard(self, index: int, cause: Exception) -> None:
        message = (
            f"env shard {index} crashed ({type(cause).__name__}: {cause}); restarted and re-seeded"
        )
        log.warning(message)
        self.events.append(message)
        try:
            self.shards[index].close()
        except Exception:  # noqa: BLE001 - closing a dead shard may fail; we replace it anyway
            pass
        self.shards[index] = self.shard_factory(index)
        cursor = self._seed_cursors[index] + self.shard_sizes[index]
        self.shards[index].wait(self.shards[index].submit("set_seed_cursor", cursor))
        self._stage_obs = [None] * len(self.shards)

    def _group_ids(self, stage: int) -> torch.Tensor:
        offset = self.global_env_offset + sum(self.shard_sizes[:stage])
        global_index = offset + torch.arange(self.shard_sizes[stage])
        return self._episode_index[stage] * self.total_groups + global_index // self.group_size

    def _value_of(self, obs: dict[str, Any]) -> torch.Tensor:
        if not getattr(self.policy, "has_value_head", False):
            first = next(v for v in obs.values() if isinstance(v, torch.Tensor))
            return torch.zeros(first.shape[0])
        with torch.no_grad():
            return self.policy.value(obs_to_device(obs, self.device)).float().cpu()

    def _collect(self, num_steps: int, reset: bool) -> tuple[Segment, dict[str, float]]:
        timings = RolloutTimings()
        start = time.perf_counter()
        stages = range(len(self.shards))
        if reset or any(o is None for o in self._stage_obs):
            pending_resets = [self.shards[s].submit("reset", None) for s in stages]
            for s in stages:
                self._stage_obs[s] = self.shards[s].wait(pending_resets[s])
                self._episode_index[s] += 1  # fresh episodes: fresh group ids
            for s in stages:
                self._seed_cursors[s] = self.shards[s].wait(self.shards[s].submit("seed_cursor"))
        buffers = [_StageBuffer() for _ in stages]
        pending: list[Any] = [None] * len(self.shards)
        for t in range(num_steps + 1):
            self._maybe_swap_weights(timings)
            if t == num_steps:
                for s in stages:
                    self._receive(s, pending, buffers, timings)
                break
            if self._schedule_for_step() == PIPELINED:
                for s in stages:  # shard s+1 simulates while shard s infers
                    self._receive(s, pending, buffers, timings)
                    self._act_and_send([s], pending, buffers, timings)
            else:
                for s in stages:
                    self._receive(s, pending, buffers, timings)
                self._act_and_send(list(stages), pending, buffers, timings)
        if self._probe is not None:
            self._probe.segment_ended()
        last_values = [self._value_of(self._stage_obs[s]) for s in stages]
        timings.total_s = time.perf_counter() - start
        segment = self._build_segment(buffers, last_values)
        return segment, timings.as_dict()

    def _schedule_for_step(self) -> str:
        """This chunk-step's schedule; under `auto`, the probe's until it decides."""
        if self._probe is None:
            return self.schedule
        schedule = self._probe.next_step(time.perf_counter())
        if schedule is not None:
            return schedule
        self.schedule = self._probe.decide()
        message = (
            f"pipeline_stages=auto: {self.schedule} over {len(self.shards)} env shards "
            f"(median chunk-step {self._probe_text()})"
        )
        log.info(message)
        self.events.append(message)
        self.probe_summary = self._probe.summary()
        self._probe = None
        return self.schedule

    def _probe_text(self) -> str:
        assert self._probe is not None
        summary = self._probe.summary()
        return ", ".join(
            f"{name} {1000 * float(summary[name + '_median_s']):.1f} ms"
            for name in (LOCKSTEP, PIPELINED)
            if name + "_median_s" in summary
        )

    def pipeline_report(self) -> dict[str, Any]:
        """The schedule in use (None while `auto` is still probing) and what the probe measured."""
        return {
            "schedule": self.schedule if self._probe is None else None,
            "shards": len(self.shards),
            "effective_stages": len(self.shards) if self.schedule == PIPELINED else 1,
            **self.probe_summary,
        }

    def _receive(
        self, stage: int, pending: list[Any], buffers: list[_StageBuffer], timings: RolloutTimings
    ) -> None:
        if pending[stage] is None:
            return
        wait_start = time.perf_counter()
        result: ChunkStepResult = self.shards[stage].wait(pending[stage])
        timings.sim_wait_s += time.perf_counter() - wait_start
        self._record_result(buffers[stage], stage, result)
        self._stage_obs[stage] = result.obs
        pending[stage] = None

    def _act_and_send(
        self,
        group: list[int],
        pending: list[Any],
        buffers: list[_StageBuffer],
        timings: RolloutTimings,
    ) -> None:
        """One act() call for the envs of the shards in `group`, then every shard gets its rows."""
        parts = [self._stage_obs[s] for s in group]
        assert all(p is not None for p in parts)
        obs = parts[0] if len(parts) == 1 else concat_obs(parts)  # type: ignore[arg-type]
        infer_start = time.perf_counter()
        with torch.no_grad():
            out = self.policy.act(
                obs_to_device(obs, self.device), self.act_mode, generator=self.generator
            )
        timings.inference_s += time.perf_counter() - infer_start
        actions = out.actions.cpu()
        value = out.value if out.value is not None else torch.zeros(actions.shape[0])
        sizes = [self.shard_sizes[s] for s in group]
        rows = {
            "actions": actions.split(sizes),
            "logprob": out.logprob.float().cpu().split(sizes),
            "value": value.float().cpu().split(sizes),
        }
        stored = {k: v.cpu().split(sizes) for k, v in out.stored.items()}
        for j, s in enumerate(group):
            pending[s] = self.shards[s].submit("step_chunk", rows["actions"][j], self.execute_steps)
            buf = buffers[s]
            stage_obs = parts[j]
            assert stage_obs is not None
            buf.obs.append({k: v for k, v in stage_obs.items() if isinstance(v, torch.Tensor)})
            buf.actions.append(rows["actions"][j])
            buf.stored.append({k: v[j] for k, v in stored.items()})
            buf.logprob.append(rows["logprob"][j])
            buf.value.append(rows["value"][j])
            buf.version.append(self.version)
            buf.group_id.append(self._group_ids(s))

    def _record_result(self, buf: _StageBuffer, stage: int, result: ChunkStepResult) -> None:
        buf.results.append(result)
        bootstrap = torch.zeros(result.reward.shape[0])
        # V(final obs) where GAE will use it: at time limits, and at terminations too when the
        # algo bootstraps them (algo.bootstrap_terminations).
        ended = result.truncated | result.terminated
        needs = ended if self.bootstrap_terminations else result.truncated & ~result.terminated
        if needs.any():
            index = needs.nonzero().flatten()
            bootstrap[index] = self._value_of(select_obs(result.final_obs, index))
        buf.bootstrap_value.append(bootstrap)
        if self.store_end_obs:
            buf.end_obs.append(
                {k: v for k, v in result.final_obs.items() if isinstance(v, torch.Tensor)}
            )
        self._episode_index[stage] += result.done.long()
        self.finished_episodes.extend(result.episodes)

    def _build_segment(
        self, buffers: list[_StageBuffer], last_values: list[torch.Tensor]
    ) -> Segment:
        def stack(getter: Callable[[_StageBuffer], list[torch.Tensor]]) -> torch.Tensor:
            return torch.cat([torch.stack(getter(b)) for b in buffers], dim=1)

        def stack_results(name: str) -> torch.Tensor:
            return stack(lambda b: [getattr(r, name) for r in b.results])

        obs_keys = buffers[0].obs[0].keys()
        stored_keys = buffers[0].stored[0].keys()
        num_steps = len(buffers[0].actions)
        versions = torch.cat(
            [
                torch.tensor(b.version).unsqueeze(1).expand(num_steps, b.actions[0].shape[0])
                for b in buffers
            ],
            dim=1,
        )
        instructions = [
            text for s in range(len(buffers)) for text in self._stage_obs[s]["instruction"]
        ]
        episodes = [e for b in buffers for r in b.results for e in r.episodes]
        return Segment(
            obs={k: stack(lambda b, k=k: [o[k] for o in b.obs]) for k in obs_keys},
            instructions=instructions,
            actions=stack(lambda b: b.actions),
            stored={k: stack(lambda b, k=k: [o[k] for o in b.stored]) for k in stored_keys},
            logprob=stack(lambda b: b.logprob),
            value=stack(lambda b: b.value),
            reward=stack_results("reward").float(),
            terminated=stack_results("terminated").bool(),
            truncated=stack_results("truncated").bool(),
            active=stack_results("active").bool(),
            bootstrap_value=stack(lambda b: b.bootstrap_value),
            last_value=torch.cat(last_values),
            version=versions.long(),
            group_id=stack(lambda b: b.group_id),
            success=stack_results("success").bool(),
            steps=stack_results("steps").long(),
            episodes=episodes,
            end_obs={k: stack(lambda b, k=k: [o[k] for o in b.end_obs]) for k in obs_keys}
            if self.store_end_obs
            else {},
        )

    def pop_events(self) -> list[str]:
        events, self.events = self.events, []
        return events

    def close(self) -> None:
        for shard in self.shards:
            shard.close()

"""runtime.pipeline_stages=auto: the probe plan, the choice (pure functions) and the worker's use."""

from __future__ import annotations

import pytest
import torch

from rl_post.actors.env_worker import LocalEnvHandle
from rl_post.actors.pipeline import (
    AUTO,
    LOCKSTEP,
    PIPELINED,
    PipelineProbe,
    ProbeSettings,
    choose_schedule,
    parse_pipeline_stages,
    probe_schedule,
)
from rl_post.actors.rollout_worker import RolloutWorker
from rl_post.config import ConfigError
from tests.actors.fakes import BiasPolicy, CountingShard


def test_parse_pipeline_stages_accepts_auto_and_integers_and_names_the_fix():
    assert parse_pipeline_stages("auto") == (2, AUTO)
    assert parse_pipeline_stages("AUTO") == (2, AUTO)
    assert parse_pipeline_stages(1) == (1, LOCKSTEP)
    assert parse_pipeline_stages(3) == (3, PIPELINED)
    assert parse_pipeline_stages("2") == (2, PIPELINED)
    for bad in (0, -1, "two"):
        with pytest.raises(ConfigError, match="use auto .* or an integer >= 1"):
            parse_pipeline_stages(bad)


def test_probe_alternates_blocks_starting_with_lockstep_then_ends():
    settings = ProbeSettings(block_steps=2, blocks=2)
    plan = [probe_schedule(i, settings) for i in range(9)]
    L, P = LOCKSTEP, PIPELINED
    assert plan == [L, L, P, P, L, L, P, P, None]


def test_choose_schedule_needs_pipelining_to_win_by_the_margin():
    lock = [0.100, 0.110, 0.090]  # median 0.100
    assert choose_schedule(lock, [0.080, 0.085, 0.200], min_gain=0.03) == PIPELINED
    assert choose_schedule(lock, [0.098, 0.099, 0.097], min_gain=0.03) == LOCKSTEP  # 2% < 3%
    assert choose_schedule(lock, [0.120, 0.130, 0.125], min_gain=0.0) == LOCKSTEP
    assert choose_schedule(lock, [0.096], min_gain=0.03) == PIPELINED  # 4% faster
    assert choose_schedule([], [0.01], min_gain=0.03) == LOCKSTEP  # nothing timed: fewer calls


def test_probe_times_steady_steps_only_and_never_across_segments():
    probe = PipelineProbe(ProbeSettings(block_steps=3, blocks=1))
    # Steps 0-2 lockstep, 3-5 pipelined. Not timed: step 0 and step 3 (first of a block), step 4
    # (the segment ends after it), step 5 (first of the next segment). Binary-exact clock values.
    clock = {0: 0.0, 1: 1.0, 2: 3.0, 3: 6.0, 4: 6.5}
    schedules = [probe.next_step(clock[i]) for i in range(5)]
    probe.segment_ended()
    schedules.append(probe.next_step(10.0))  # step 5
    assert schedules == [LOCKSTEP] * 3 + [PIPELINED] * 3
    assert probe.next_step(10.5) is None and probe.done
    assert probe.periods == {LOCKSTEP: [2.0, 3.0], PIPELINED: []}
    assert probe.decide() == LOCKSTEP  # nothing pipelined was timed
    assert probe.summary()["lockstep_median_s"] == 2.5 and probe.summary()["pipelined_samples"] == 0


def test_probe_with_steady_pipelined_steps_picks_the_faster():
    probe = PipelineProbe(ProbeSettings(block_steps=3, blocks=1))
    # One segment; lockstep steps 1-2 take 1.0 s, pipelined steps 4-5 take 0.5 s.
    for now in (0.0, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0):
        probe.next_step(now)
    assert probe.periods == {LOCKSTEP: [1.0, 1.0], PIPELINED: [0.5, 0.5]}
    assert probe.decide() == PIPELINED


def test_probe_settings_reject_a_block_with_no_timed_step():
    with pytest.raises(ConfigError, match="block_steps >= 2"):
        ProbeSettings(block_steps=1)


def _worker(schedule: str, shard_sizes=(2, 3), **kwargs) -> RolloutWorker:
    return RolloutWorker(
        policy=BiasPolicy(),
        shard_factory=lambda i: LocalEnvHandle(CountingShard(shard_sizes[i], episode_len=5)),
        shard_sizes=list(shard_sizes),
        execute_steps=2,
        group_size=1,
        global_env_offset=0,
        total_envs=sum(shard_sizes),
        schedule=schedule,
        **kwargs,
    )


def test_lockstep_batches_all_shards_in_one_act_call_and_gives_the_same_segment_layout():
    calls: list[int] = []
    lock, pipe = _worker(LOCKSTEP), _worker(PIPELINED)
    original = lock.policy.act

    def counting_act(obs, mode="stochastic", generator=None):
        calls.append(obs["state"].shape[0])
        return original(obs, mode, generator=generator)

    lock.policy.act = counting_act  # type: ignore[method-assign]
    a, _ = lock.collect_segment(4)
    b, _ = pipe.collect_segment(4)
    assert calls == [5, 5, 5, 5]  # one call of all 5 envs per chunk-step (pipelined: 2 per step)
    # The simulator's side does not depend on the schedule (these fakes ignore actions).
    for name in ("reward", "truncated", "steps", "group_id", "version"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.obs["state"], b.obs["state"])
    assert a.actions.shape == b.actions.shape == (4, 5, 2, 1)
    assert a.stored["noise"].shape == (4, 5, 2, 1)
    # Each shard acted on its own rows: actions = bias + noise, and stored noise matches.
    assert torch.allclose(a.actions, a.stored["noise"])
    lock.close()
    pipe.close()


def test_auto_probes_then_keeps_one_schedule_reports_it_and_survives_a_checkpoint():
    settings = ProbeSettings(block_steps=3, blocks=1)
    worker = _worker(AUTO, probe_settings=settings)
    assert worker.pipeline_report()["schedule"] is None
    worker.collect_segment(4)  # probe steps 0-3
    assert worker.pipeline_report()["schedule"] is None
    worker.collect_segment(4)  # steps 4-5, then the choice is used
    report = worker.pipeline_report()
    assert report["schedule"] in (LOCKSTEP, PIPELINED) and report["shards"] == 2
    assert report["effective_stages"] == (2 if report["schedule"] == PIPELINED else 1)
    # Timed: lockstep steps 1 and 2; pipelined step 5 (3 opens its block, 4 opens segment 2).
    assert report["lockstep_samples"] == 2 and report["pipelined_samples"] == 1
    assert any("pipeline_stages=auto" in e for e in worker.pop_events())

    restored = _worker(AUTO, probe_settings=settings)
    restored.load_state(worker.state())
    assert restored.pipeline_report() == report  # a resumed run does not probe again
    worker.close()
    restored.close()


def test_auto_with_one_shard_has_nothing_to_choose():
    worker = _worker(AUTO, shard_sizes=(4,))
    assert worker.pipeline_report()["schedule"] == LOCKSTEP
    worker.close()

import pytest
import torch

from rl_post.actors.env_worker import LocalEnvHandle
from rl_post.actors.rollout_worker import RolloutWorker
from rl_post.runtime.batch import advantage_inputs, flatten_batch
from rl_post.runtime.collector import SegmentCollector, mask_stale, merge_segments
from rl_post.runtime.rollout_pool import LocalRolloutPool
from tests.actors.fakes import BiasPolicy, CountingShard


def pool_of(num_workers: int) -> LocalRolloutPool:
    workers = [
        RolloutWorker(
            policy=BiasPolicy(),
            shard_factory=lambda i: LocalEnvHandle(CountingShard(2, episode_len=6)),
            shard_sizes=[2],
            execute_steps=2,
            group_size=1,
            global_env_offset=2 * w,
            total_envs=2 * num_workers,
        )
        for w in range(num_workers)
    ]
    return LocalRolloutPool(workers)


def test_sync_gather_returns_one_segment_per_worker_with_current_version():
    pool = pool_of(2)
    collector = SegmentCollector(
        pool, steps_per_segment=3, reset_each_segment=False, mode="sync", max_staleness=5
    )
    result = collector.gather(current_version=0)
    assert len(result.segments) == 2 and result.max_lag == 0 and result.stale_dropped == 0
    merged = merge_segments(result.segments)
    assert merged.reward.shape == (3, 4)
    assert merged.last_value.shape == (4,)
    pool.close()


def test_async_gather_relaunches_collection_and_tracks_lag():
    pool = pool_of(1)
    collector = SegmentCollector(
        pool, steps_per_segment=2, reset_each_segment=False, mode="async", max_staleness=1
    )
    collector.gather(current_version=0)
    assert collector._in_flight[0] is not None  # next segment already being collected
    pool.push_weights(1, {"bias": torch.tensor([1.0])})
    second = collector.gather(current_version=1)
    assert second.max_lag <= 1
    collector.drain()
    pool.close()


def test_mask_stale_drops_decisions_older_than_the_bound():
    pool = pool_of(1)
    segment, _ = pool.workers[0].collect_segment(3)
    segment.version = torch.tensor([[0, 0], [1, 1], [2, 2]])
    dropped, lag = mask_stale(segment, current_version=2, max_staleness=1)
    assert dropped == 2 and lag == 2
    assert segment.active.tolist() == [[False, False], [True, True], [True, True]]
    pool.close()


def test_flatten_batch_keeps_masked_decisions_only():
    pool = pool_of(1)
    segment, _ = pool.workers[0].collect_segment(2)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    adv = torch.arange(4.0).reshape(2, 2)
    batch = flatten_batch(segment, adv, adv + 10, mask)
    assert batch["advantages"].tolist() == [0.0, 2.0, 3.0]
    assert batch["returns"].tolist() == [10.0, 12.0, 13.0]
    assert batch["obs"]["state"].shape == (3, 1)
    assert batch["obs"]["instruction"] == ["count"] * 3
    assert batch["stored"]["noise"].shape == (3, 2, 1)
    assert set(advantage_inputs(segment)) >= {"reward", "value", "last_value", "group_id"}
    pool.close()


def test_collector_rejects_unknown_mode():
    with pytest.raises(ValueError, match="sync or async"):
        SegmentCollector(pool_of(1), 2, False, "bogus", 0)


def test_segments_per_update_collects_consecutive_segments_per_worker():
    pool = pool_of(2)
    collector = SegmentCollector(
        pool,
        steps_per_segment=2,
        reset_each_segment=False,
        mode="sync",
        max_staleness=0,
        segments_per_update=3,
    )
    result = collector.gather(current_version=0)
    assert len(result.segments) == 6 and len(result.worker_timings) == 2
    # Worker-major: worker 0's three segments continue one another in time (t advances 2 per
    # decision and wraps at the episode length 6).
    first_states = [s.obs["state"][0, 0, 0].item() for s in result.segments[:3]]
    assert first_states == [0.0, 4.0, 2.0]
    assert merge_segments(result.segments).reward.shape == (2, 12)
    assert all(f is None for f in collector._in_flight)  # sync: nothing left running
    pool.close()


def test_async_segments_per_update_keeps_one_segment_in_flight():
    pool = pool_of(1)
    collector = SegmentCollector(
        pool,
        steps_per_segment=2,
        reset_each_segment=False,
        mode="async",
        max_staleness=2,
        segments_per_update=2,
    )
    result = collector.gather(current_version=0)
    assert len(result.segments) == 2
    assert collector._in_flight[0] is not None
    collector.drain()
    pool.close()


def test_collector_rejects_zero_segments_per_update():
    with pytest.raises(ValueError, match="segments_per_update"):
        SegmentCollector(pool_of(1), 2, False, "sync", 0, segments_per_update=0)


def test_continuing_segments_of_a_worker_join_in_time_so_gae_crosses_the_boundary():
    from rl_post.algorithms.gae import gae
    from rl_post.runtime.collector import merge_gathered

    pool = pool_of(2)
    collector = SegmentCollector(
        pool,
        steps_per_segment=2,
        reset_each_segment=False,
        mode="sync",
        max_staleness=0,
        segments_per_update=3,
    )
    result = collector.gather(current_version=0)
    merged = merge_gathered(result, continuing=True)
    assert merged.reward.shape == (6, 4)  # 3 segments x 2 decisions, 2 workers x 2 envs
    # worker 0, env 0 runs on in time: t = 0, 2, 4, 0 (episode of 6 wraps), 2, 4
    assert merged.obs["state"][:, 0, 0].tolist() == [0.0, 2.0, 4.0, 0.0, 2.0, 4.0]
    torch.testing.assert_close(merged.last_value[:2], result.segments[2].last_value)
    # GAE over the joined segment equals GAE over one long segment collected in one go
    fresh = pool_of(1)
    long_segment, _ = fresh.workers[0].collect_segment(6, True)
    joined = merge_gathered(result, continuing=True)
    args = dict(gamma=0.9, lam=0.8)
    expected, _ = gae(
        long_segment.reward,
        long_segment.value,
        long_segment.terminated,
        long_segment.truncated,
        long_segment.bootstrap_value,
        long_segment.last_value,
        active=long_segment.active,
        **args,
    )
    got, _ = gae(
        joined.reward[:, :2],
        joined.value[:, :2],
        joined.terminated[:, :2],
        joined.truncated[:, :2],
        joined.bootstrap_value[:, :2],
        joined.last_value[:2],
        active=joined.active[:, :2],
        **args,
    )
    torch.testing.assert_close(got, expected)
    # fresh-episode segments stay side by side
    assert merge_gathered(result, continuing=False).reward.shape == (2, 12)
    pool.close()
    fresh.close()

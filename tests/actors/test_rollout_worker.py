import torch

from rl_post.actors.env_worker import LocalEnvHandle
from rl_post.actors.rollout_worker import RolloutWorker
from tests.actors.fakes import BiasPolicy, CountingShard


def make_worker(shards, group_size=1, seed=0):
    created = []

    def factory(i):
        created.append(i)
        return LocalEnvHandle(
            shards[i] if len(created) <= len(shards) else CountingShard(2, episode_len=5)
        )

    worker = RolloutWorker(
        policy=BiasPolicy(),
        shard_factory=factory,
        shard_sizes=[s.num_envs for s in shards],
        execute_steps=2,
        group_size=group_size,
        global_env_offset=0,
        total_envs=sum(s.num_envs for s in shards),
        seed=seed,
    )
    return worker, created


def test_segment_shapes_and_stage_concatenation():
    worker, _ = make_worker([CountingShard(2, episode_len=5), CountingShard(3, episode_len=5)])
    segment, timings = worker.collect_segment(4)
    assert segment.reward.shape == (4, 5)
    assert segment.actions.shape == (4, 5, 2, 1)
    assert segment.obs["state"].shape == (4, 5, 1)
    assert segment.stored["noise"].shape == (4, 5, 2, 1)
    # episode of 5 steps with chunks of 2: rewards 2, 2, 1 (truncated), then 2 of the next episode
    assert segment.reward[:, 0].tolist() == [2.0, 2.0, 1.0, 2.0]
    assert segment.truncated[:, 0].tolist() == [False, False, True, False]
    assert segment.steps[:, 0].tolist() == [2, 2, 1, 2]
    assert len(segment.instructions) == 5
    assert set(timings) >= {"inference_s", "sim_wait_s", "weight_swap_s"}


def test_bootstrap_value_is_value_of_final_obs_on_truncation():
    worker, _ = make_worker([CountingShard(2, episode_len=5)])
    segment, _ = worker.collect_segment(4)
    # final obs of the truncated chunk has counter 5 -> value 50; elsewhere no bootstrap
    assert segment.bootstrap_value[:, 0].tolist() == [0.0, 0.0, 50.0, 0.0]
    # after 4 decisions the counter is at 2 (new episode) -> last value 20
    assert segment.last_value.tolist() == [20.0, 20.0]


def test_group_ids_advance_per_episode_and_are_shared_within_groups():
    worker, _ = make_worker([CountingShard(4, episode_len=4)], group_size=2)
    segment, _ = worker.collect_segment(3)
    ids = segment.group_id
    assert torch.equal(ids[:, 0], ids[:, 1]) and torch.equal(ids[:, 2], ids[:, 3])
    assert not torch.equal(ids[:, 0], ids[:, 2])
    assert ids[0, 0] != ids[2, 0]  # a new episode after the truncation at decision 2 gets a new id


def test_weights_are_swapped_between_chunk_steps_and_versions_recorded():
    worker, _ = make_worker([CountingShard(2, episode_len=5)])
    worker.collect_segment(2)
    worker.set_weights(7, {"bias": torch.tensor([3.0])})
    segment, _ = worker.collect_segment(2)
    assert segment.version.unique().tolist() == [7]
    assert worker.policy.bias.item() == 3.0


def test_same_seed_gives_same_actions():
    a, _ = make_worker([CountingShard(2, episode_len=5)], seed=3)
    b, _ = make_worker([CountingShard(2, episode_len=5)], seed=3)
    assert torch.equal(a.collect_segment(3)[0].actions, b.collect_segment(3)[0].actions)


def test_crashed_shard_is_rebuilt_and_collection_continues():
    worker, created = make_worker([CountingShard(2, episode_len=5, fail_after=1)])
    segment, _ = worker.collect_segment(3)
    assert segment.reward.shape == (3, 2)
    assert created == [0, 0]
    events = worker.pop_events()
    assert len(events) == 1 and "restarted" in events[0]


def test_end_obs_recorded_only_when_asked():
    worker, _ = make_worker([CountingShard(2, episode_len=5)])
    assert worker.collect_segment(2)[0].end_obs == {}
    worker.store_end_obs = True
    segment, _ = worker.collect_segment(3)
    # the episode continues from counter 4: it ends at 5 (pre-reset final obs kept), then 2, 4
    assert segment.end_obs["state"][:, 0, 0].tolist() == [5.0, 2.0, 4.0]


def test_terminations_get_a_bootstrap_value_only_when_the_algo_uses_it():
    def segment_of(bootstrap_terminations):
        worker = RolloutWorker(
            policy=BiasPolicy(),
            shard_factory=lambda i: LocalEnvHandle(CountingShard(2, episode_len=5, terminate=True)),
            shard_sizes=[2],
            execute_steps=2,
            group_size=1,
            global_env_offset=0,
            total_envs=2,
            bootstrap_terminations=bootstrap_terminations,
        )
        return worker.collect_segment(4)[0]

    plain = segment_of(False)
    assert plain.terminated[:, 0].tolist() == [False, False, True, False]
    assert plain.bootstrap_value[:, 0].tolist() == [0.0, 0.0, 0.0, 0.0]
    # the final obs of the terminating chunk has counter 5 -> value 50, as on a truncation
    assert segment_of(True).bootstrap_value[:, 0].tolist() == [0.0, 0.0, 50.0, 0.0]

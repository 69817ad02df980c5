"""The driver through Ray: rollout and env workers as actors, sync and async, and a crashed env worker."""

import os
import signal

import pytest
import ray

from rl_post.trainer import Trainer
from tests.trainer_helpers import read_metrics, tiny_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield
    ray.shutdown()


def test_sync_ppo_flow_noise_with_value_head(tmp_path):
    trainer = Trainer(
        tiny_config(
            tmp_path,
            "runtime=sync",
            "model=flow_tiny",
            "model.sampler=flow_noise",
            "train.iterations=2",
        )
    )
    assert trainer.run() == 0
    rows = read_metrics(trainer.run_dir)
    assert [r["version"] for r in rows] == [1, 2]
    assert all(r["rollout/policy_lag_max"] == 0 for r in rows)
    assert rows[-1]["learner/value_loss"] is not None


def test_async_grpo_token_versions_increase_and_staleness_is_bounded(tmp_path):
    trainer = Trainer(
        tiny_config(
            tmp_path,
            "runtime=async",
            "runtime.max_staleness=1",
            "algo=grpo",
            "algo.group_size=2",
            "algo.dynamic_sampling.enabled=false",
            "model=token_tiny",
            "env.num_envs=4",
            "env.max_episode_steps=8",
            "train.iterations=4",
            "train.steps_per_segment=auto",
        )
    )
    assert trainer.run() == 0
    rows = read_metrics(trainer.run_dir)
    versions = [r["version"] for r in rows]
    assert versions == sorted(versions) and versions[-1] == 4
    assert all(r["rollout/consumed_lag_max"] <= 1 for r in rows)
    assert all(r["adv/groups_total"] == 2 for r in rows)


@pytest.mark.parametrize("env_shards", ["actor", "in_process"])
def test_killed_env_worker_is_restarted_and_the_run_continues(tmp_path, env_shards):
    trainer = Trainer(
        tiny_config(
            tmp_path,
            "runtime=sync",
            "train.iterations=2",
            f"runtime.placement.env_shards={env_shards}",
            "runtime.pipeline_stages=2",  # no `auto` choice event: every event is the restart
        )
    )
    rollout_actor = trainer.pool.workers[0]
    if env_shards == "actor":  # the EnvWorker actor dies
        ray.kill(ray.get(rollout_actor.env_actor_ids.remote())[0], no_restart=True)
    else:  # an env process of a shard inside the rollout worker dies
        assert ray.get(rollout_actor.env_actor_ids.remote()) == []
        os.kill(ray.get(rollout_actor.env_process_ids.remote())[0], signal.SIGKILL)
    assert trainer.run() == 0
    rows = read_metrics(trainer.run_dir)
    assert [r["iteration"] for r in rows] == [1, 2]
    assert sum(r["events"] for r in rows) >= 1

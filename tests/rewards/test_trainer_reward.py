"""RL runs with a learned reward in the loop (ManiSkill processes, so marked e2e)."""

import pytest

from rl_post.envs.factory import obs_spec_for
from rl_post.trainer import Trainer
from tests.rewards.helpers import threshold_classifier
from tests.trainer_helpers import read_metrics, tiny_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def stop_ray_afterwards():
    yield
    import ray

    ray.shutdown()


AGREEMENT_KEYS = {"reward/true_success_rate", "reward/predicted_success_rate", "reward/ece"}


def _classifier_for_env(tmp_path, cfg):
    return threshold_classifier(tmp_path / "clf", state_dim=obs_spec_for(cfg.env).state_dim)


def _run(tmp_path, *overrides):
    probe = tiny_config(tmp_path)
    ckpt = _classifier_for_env(tmp_path, probe)
    cfg = tiny_config(
        tmp_path,
        "reward=success_classifier",
        f"reward.checkpoint={ckpt}",
        "train.iterations=2",
        "checkpoint.every=0",
        *overrides,
    )
    trainer = Trainer(cfg)
    assert trainer.run() == 0
    return read_metrics(trainer.run_dir)


def test_serial_run_with_learned_reward_logs_agreement(tmp_path):
    rows = _run(tmp_path, "runtime=serial")
    assert len(rows) == 2
    for row in rows:
        assert AGREEMENT_KEYS <= set(row)
        assert 0.0 <= row["reward/predicted_success_rate"] <= 1.0
        # sparse learned reward: the decision reward is the share of paid first events
        assert 0.0 <= row["rollout/decision_reward"] <= 1.0


def test_ray_run_with_reward_worker(tmp_path):
    rows = _run(tmp_path, "runtime=sync", "reward.mode=dense")
    assert len(rows) == 2
    assert AGREEMENT_KEYS <= set(rows[-1])
    # dense learned reward is the mean predicted probability over active decisions
    assert rows[-1]["reward/mean"] == pytest.approx(rows[-1]["reward/mean_prob"], abs=1e-5)

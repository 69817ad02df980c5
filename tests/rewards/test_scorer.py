import pytest
import torch

from rl_post.config import ConfigError, load_config
from rl_post.envs.spec import ObsSpec
from rl_post.rewards.base import (
    ClassifierReward,
    RewardScorer,
    build_scorer,
    parse_reward_settings,
)
from tests.rewards.helpers import make_segment, threshold_classifier

SPEC = ObsSpec(state_dim=3, action_dim=4)


def cfg(*overrides: str):
    return load_config("train", list(overrides))


def test_env_reward_is_used_as_is():
    scorer = build_scorer(cfg(), SPEC)
    seg = make_segment([[0.5, 1.0], [0.2, 0.0]], [[0, 1], [0, 0]])
    assert scorer.score(seg) == {}
    torch.testing.assert_close(seg.reward, torch.tensor([[0.5, 1.0], [0.2, 0.0]]))


def test_env_sparse_pays_first_success_once_per_episode_and_respects_active():
    scorer = build_scorer(cfg("reward=env_sparse", "env.reward_mode=dense"), SPEC)
    # env 0: success at t=1 and t=2 in one episode -> paid at t=1 only.
    # env 1: success at t=0 ends its episode (terminated), success again at t=2 (new episode),
    #        but t=2 is inactive -> nothing.
    seg = make_segment(
        reward=[[0.3, 0.9], [0.7, 0.1], [0.8, 0.4]],
        success=[[0, 1], [1, 0], [1, 1]],
        terminated=[[0, 1], [0, 0], [0, 0]],
        active=[[1, 1], [1, 1], [1, 0]],
    )
    metrics = scorer.score(seg)
    assert seg.reward.tolist() == [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    assert metrics["reward/events"] == 2.0
    # the next segment continues env 0's episode: no second payment
    seg2 = make_segment([[0.0, 0.0]], [[1, 0]])
    scorer.score(seg2)
    assert seg2.reward.tolist() == [[0.0, 0.0]]


def test_env_dense_requires_a_dense_env_reward():
    with pytest.raises(ConfigError, match="env.reward_mode"):
        parse_reward_settings(cfg("reward=env_dense", "env.reward_mode=sparse"))
    scorer = build_scorer(cfg("reward=env_dense", "env.reward_mode=normalized_dense"), SPEC)
    seg = make_segment([[0.25, 0.5]], [[0, 0]], active=[[1, 0]])
    scorer.score(seg)
    assert seg.reward.tolist() == [[0.25, 0.5]]  # identity: the env already zeroes idle decisions


def test_unknown_reward_name_lists_choices():
    c = cfg()
    c.reward.name = "magic"
    with pytest.raises(ConfigError, match="env_sparse"):
        parse_reward_settings(c)


def test_classifier_reward_needs_checkpoint_and_end_obs():
    with pytest.raises(ConfigError, match="reward.checkpoint"):
        parse_reward_settings(cfg("reward=success_classifier"))
    with pytest.raises(ConfigError, match="needs_end_obs"):
        parse_reward_settings(
            cfg("reward=success_classifier", "reward.checkpoint=x", "reward.needs_end_obs=false")
        )


def _classifier_segment():
    end = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0]], [[1.0, 0, 0], [1.0, 0, 0]]])  # [T=2, N=2, 3]
    return make_segment(
        reward=[[0.0, 0.0], [0.0, 0.0]],
        success=[[1, 0], [0, 1]],
        end_state=end,
    )


def test_success_classifier_sparse_and_agreement_metrics(tmp_path):
    ckpt = threshold_classifier(tmp_path / "clf", state_dim=3)
    scorer = build_scorer(cfg("reward=success_classifier", f"reward.checkpoint={ckpt}"), SPEC)
    seg = _classifier_segment()
    metrics = scorer.score(seg)
    # predicted success (state[0] > 0): [[1, 0], [1, 1]]; env 0 pays once
    assert seg.reward.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    # predicted [1,0,1,1] vs true [1,0,0,1]: precision 2/3, recall 1
    assert metrics["reward/precision"] == pytest.approx(2 / 3)
    assert metrics["reward/recall"] == pytest.approx(1.0)
    assert metrics["reward/true_success_rate"] == pytest.approx(0.5)
    assert metrics["reward/predicted_success_rate"] == pytest.approx(0.75)
    assert {"reward/auroc", "reward/ece"} <= set(metrics)


def test_success_classifier_dense_with_potential_shaping_and_bonus(tmp_path):
    ckpt = threshold_classifier(tmp_path / "clf", state_dim=3)
    c = cfg(
        "reward=success_classifier",
        f"reward.checkpoint={ckpt}",
        "reward.mode=dense",
        "reward.shaping=potential",
        "reward.success_bonus=2.0",
        "reward.shaping_gamma=0.5",
    )
    scorer = build_scorer(c, SPEC)
    seg = _classifier_segment()  # start states are zeros: Phi(s) = sigmoid(0) = 0.5
    scorer.score(seg)
    p = torch.sigmoid(torch.tensor([[20.0, -20.0], [20.0, 20.0]]))
    bonus = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    expected = p + bonus + (0.5 * p - 0.5)
    torch.testing.assert_close(seg.reward, expected)


def test_classifier_state_dim_must_match_env(tmp_path):
    ckpt = threshold_classifier(tmp_path / "clf", state_dim=5)
    with pytest.raises(ConfigError, match="state_dim"):
        build_scorer(cfg("reward=success_classifier", f"reward.checkpoint={ckpt}"), SPEC)


def test_scorer_with_fake_predictor_and_missing_end_obs():
    settings = parse_reward_settings(cfg("reward=success_classifier", "reward.checkpoint=x"))
    scorer = RewardScorer(settings, ClassifierReward(lambda o: o["state"][:, 0], "dense", 0.5))
    seg = make_segment([[0.0]], [[0]])
    with pytest.raises(ValueError, match="needs_end_obs"):
        scorer.score(seg)


def test_true_sparse_reward_with_classifier_potential_logs_agreement(tmp_path):
    ckpt = threshold_classifier(tmp_path / "clf", state_dim=3)
    c = cfg(
        "reward=env_sparse",
        "reward.shaping=potential",
        "reward.needs_end_obs=true",
        f"reward.checkpoint={ckpt}",
        "reward.shaping_gamma=1.0",
    )
    seg = _classifier_segment()
    metrics = build_scorer(c, SPEC).score(seg)
    p = torch.sigmoid(torch.tensor([[20.0, -20.0], [20.0, 20.0]]))
    true_first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(seg.reward, true_first + p - 0.5)
    assert metrics["reward/recall"] == pytest.approx(1.0)
    assert "reward/shaping_mean" in metrics

"""compute_advantages / compute_loss end to end on small hand cases, one per algorithm."""

import math
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from rl_post.algorithms.objective import compute_advantages, compute_loss
from rl_post.config import ConfigError
from rl_post.models.policy import EvalOutput

H = math.sqrt(3) / 2  # GRPO advantage of a [1, 0, 0, 1] group with sample std
ALGO_DIR = Path(__file__).resolve().parents[2] / "configs" / "algo"


@pytest.fixture
def algo_cfg():
    """Load configs/algo/<name>.yaml (struct mode, like a composed config) with overrides."""

    def load(name: str, **overrides) -> DictConfig:
        cfg = OmegaConf.load(ALGO_DIR / f"{name}.yaml")
        OmegaConf.set_struct(cfg, True)
        for key, value in overrides.items():
            OmegaConf.update(cfg, key, value)
        return cfg

    return load


def b(rows):
    return torch.tensor(rows, dtype=torch.bool)


def f(rows):
    return torch.tensor(rows, dtype=torch.float64)


def ppo_data():
    # env 0 runs through the segment (bootstrap last_value 2); env 1 truncates at t=1 with
    # V(final_obs)=2 and then idles.
    return {
        "reward": f([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]),
        "value": f([[0.5, 0.2], [1.0, 0.4], [1.5, 0.6]]),
        "terminated": b([[0, 0], [0, 0], [0, 0]]),
        "truncated": b([[0, 0], [0, 1], [0, 0]]),
        "active": b([[1, 1], [1, 1], [1, 0]]),
        "bootstrap_value": f([[0.0, 0.0], [0.0, 2.0], [0.0, 0.0]]),
        "group_id": torch.tensor([[0, 1], [0, 1], [0, 2]]),
        "success": b([[0, 0], [0, 0], [0, 0]]),
        "last_value": f([2.0, 0.0]),
    }


def test_compute_advantages_ppo(algo_cfg):
    cfg = algo_cfg("ppo", gamma=0.9, lam=0.8, normalize_advantages=False)
    out = compute_advantages(ppo_data(), cfg)
    # env 0: t2 2 + 0.9*2 - 1.5 = 2.3; t1 0.35 + 0.72*2.3 = 2.006; t0 1.4 + 0.72*2.006 = 2.84432
    # env 1: t1 1 + 0.9*2 - 0.4 = 2.4; t0 0.16 + 0.72*2.4 = 1.888; t2 idle
    expected = f([[2.84432, 1.888], [2.006, 2.4], [2.3, 0.0]])
    torch.testing.assert_close(out["advantages"], expected)
    torch.testing.assert_close(out["returns"], expected + ppo_data()["value"])
    torch.testing.assert_close(out["mask"], f([[1, 1], [1, 1], [1, 0]]))
    assert out["stats"]["adv_mean"] == pytest.approx(11.43832 / 5)

    normalized = compute_advantages(ppo_data(), algo_cfg("ppo", gamma=0.9, lam=0.8))
    adv, mask = normalized["advantages"], normalized["mask"].bool()
    assert adv[mask].mean().item() == pytest.approx(0.0, abs=1e-9)
    assert adv[mask].std().item() == pytest.approx(1.0, abs=1e-5)
    assert adv[~mask].tolist() == [0.0]
    # the raw statistics are reported, not the normalized ones
    assert normalized["stats"]["adv_mean"] == pytest.approx(11.43832 / 5)


def test_reward_scale_multiplies_rewards_before_gae(algo_cfg):
    # Same case with rewards halved: env 1, t1: 0.5 + 0.9*2 - 0.4 = 1.9; t0 0.16 + 0.72*1.9 = 1.528
    # env 0, t2: 1 + 1.8 - 1.5 = 1.3; t1 0.35 + 0.72*1.3 = 1.286; t0 0.9 + 0.72*1.286 = 1.82592
    cfg = algo_cfg("ppo", gamma=0.9, lam=0.8, normalize_advantages=False, reward_scale=0.5)
    data = ppo_data()
    out = compute_advantages(data, cfg)
    torch.testing.assert_close(out["advantages"], f([[1.82592, 1.528], [1.286, 1.9], [1.3, 0.0]]))
    torch.testing.assert_close(data["reward"], ppo_data()["reward"])  # the input is not modified
    with pytest.raises(ConfigError, match="reward_scale"):
        compute_advantages(ppo_data(), algo_cfg("ppo", reward_scale=0.0))


def group_data():
    # Group 0 = envs 0..3 (one initial state); returns [1, 0, 0, 1]:
    #   env 0 succeeds at t=1 then starts a new episode (group 1) left incomplete at the end;
    #   envs 1, 2 time out at t=2; env 3 succeeds at t=0 and idles.
    # Group 5 = envs 4, 5: both time out with return 0 (no signal, dropped by dynamic sampling).
    return {
        "reward": f([[0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]),
        "value": torch.zeros(3, 6, dtype=torch.float64),
        "terminated": b([[0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]),
        "truncated": b([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 1, 1]]),
        "active": b([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 1, 1], [1, 1, 1, 0, 1, 1]]),
        "bootstrap_value": torch.zeros(3, 6, dtype=torch.float64),
        "group_id": torch.tensor([[0, 0, 0, 0, 5, 5], [0, 0, 0, 0, 5, 5], [1, 0, 0, 0, 5, 5]]),
        "success": b([[0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]),
        "last_value": torch.zeros(6, dtype=torch.float64),
    }


GROUP_MASK = [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0]]


def test_compute_advantages_grpo(algo_cfg):
    out = compute_advantages(group_data(), algo_cfg("grpo"))
    expected = f([[H, -H, -H, H, 0, 0], [H, -H, -H, 0, 0, 0], [0, -H, -H, 0, 0, 0]])
    torch.testing.assert_close(out["advantages"], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["mask"], f(GROUP_MASK))
    torch.testing.assert_close(out["returns"][0], f([1, 0, 0, 1, 0, 0]))
    stats = out["stats"]
    assert stats["groups_total"] == 2 and stats["groups_dropped"] == 1
    assert stats["incomplete_trajectories"] == 1 and stats["trajectories"] == 6
    assert stats["traj_success_rate"] == pytest.approx(2 / 6)

    kept = compute_advantages(group_data(), algo_cfg("grpo", **{"dynamic_sampling.enabled": False}))
    assert kept["stats"]["groups_dropped"] == 0
    # group 5 is trained on with zero advantage (plain GRPO without dynamic sampling)
    assert kept["mask"][:, 4:].tolist() == [[1.0, 1.0]] * 3
    assert kept["advantages"][:, 4:].abs().sum().item() == 0.0


def test_compute_advantages_rloo(algo_cfg):
    out = compute_advantages(group_data(), algo_cfg("rloo"))
    t = 2 / 3  # 1 - 1/3 and 0 - 2/3
    expected = f([[t, -t, -t, t, 0, 0], [t, -t, -t, 0, 0, 0], [0, -t, -t, 0, 0, 0]])
    torch.testing.assert_close(out["advantages"], expected)
    torch.testing.assert_close(out["mask"], f(GROUP_MASK))


def eval_output(token_ratios, value=None, entropy=0.5):
    logprob = torch.log(f(token_ratios)).requires_grad_(True)
    return EvalOutput(
        logprob=logprob,
        entropy=torch.full_like(logprob, entropy),
        value=None if value is None else f(value).requires_grad_(True),
    )


def loss_batch(advantages, mask=(1.0, 1.0)):
    return {
        "logprob_old": torch.zeros(2, 1, 2, dtype=torch.float64),
        "advantages": f(advantages),
        "returns": f([2.0, 0.0]),
        "values_old": f([0.5, 2.5]),
        "mask": f(mask),
    }


def test_compute_loss_ppo(algo_cfg):
    cfg = algo_cfg("ppo", entropy_coef=0.01, kl_coef=0.1)
    new = eval_output([[[1.5, 1.0]], [[0.5, 0.9]]], value=[1.0, 2.0])  # [B=2, H=1, A=2]
    total, stats = compute_loss(new, loss_batch([1.0, -1.0]), cfg, ref_logprob=torch.zeros(2, 1, 2))
    # policy, per token: -1.28, -1.0 (A=1); max(0.5, 0.8) = 0.8, 0.9 (A=-1) -> -0.58/4 = -0.145
    # value (clip 0.2): 1.745 (see test_value_loss_plain_clipped_and_huber); entropy 0.5
    # k3 per token exp(-d)+d-1, d = ln r: 0.0721318, 0, 0.3068528, 0.0057506 -> 0.0961838
    assert stats["policy_loss"] == pytest.approx(-0.145)
    assert stats["value_loss"] == pytest.approx(1.745)
    assert stats["entropy"] == pytest.approx(0.5)
    assert stats["kl"] == pytest.approx(0.0961838, abs=1e-6)
    assert total.item() == pytest.approx(-0.145 + 0.5 * 1.745 - 0.01 * 0.5 + 0.1 * 0.0961838)
    assert stats["clip_frac"] == pytest.approx(0.5)  # 1.5 and 0.5 are outside [0.8, 1.28]
    assert stats["ratio_mean"] == pytest.approx(3.9 / 4)
    assert stats["ratio_max"] == pytest.approx(1.5)
    # (r - 1) - ln r: 0.0945349, 0, 0.1931472, 0.0053605
    assert stats["approx_kl"] == pytest.approx(0.2930426 / 4, abs=1e-6)
    # Var(R=[2,0]) = 2, Var(R - V = [1, -2]) = 4.5 -> 1 - 4.5/2
    assert stats["explained_var"] == pytest.approx(-1.25)
    total.backward()
    assert new.logprob.grad.abs().sum() > 0
    # both value errors are worse after clipping, so the pessimistic max is flat in V
    assert new.value.grad.tolist() == [0.0, 0.0]


def test_compute_loss_grpo_chunk_level(algo_cfg):
    cfg = algo_cfg("grpo", logprob_level="chunk")
    new = eval_output([[[1.5, 1.0]], [[0.5, 0.9]]], value=[9.0, 9.0])  # value head is ignored
    total, stats = compute_loss(new, loss_batch([1.0, -1.0]), cfg)
    # chunk ratios 1.5 and 0.45: -1.28 and max(0.45, 0.8) = 0.8 -> -0.24
    assert total.item() == pytest.approx(-0.24)
    assert stats["clip_frac"] == pytest.approx(1.0)
    assert math.isnan(stats["value_loss"]) and math.isnan(stats["kl"])
    assert math.isnan(stats["explained_var"])


def test_compute_loss_rloo_action_level_masks_garbage(algo_cfg):
    cfg = algo_cfg("rloo", logprob_level="action")
    # decision 1 is masked out and carries an absurd ratio that must not show up anywhere
    new = eval_output([[[1.1, 0.6]], [[1e20, 1e20]]])
    new = EvalOutput(new.logprob.reshape(2, 2, 1), new.entropy.reshape(2, 2, 1), None)
    batch = loss_batch([2 / 3, -2 / 3], mask=(1.0, 0.0))
    batch["logprob_old"] = torch.zeros(2, 2, 1, dtype=torch.float64)
    total, stats = compute_loss(new, batch, cfg)
    # r=1.1: -1.1*2/3 (inside the clip range); r=0.6: max(-0.4, -0.8*2/3) = -0.4
    assert total.item() == pytest.approx((-1.1 * 2 / 3 - 0.4) / 2)
    assert stats["ratio_max"] == pytest.approx(1.1)


def test_compute_loss_rejects_mismatched_grain(algo_cfg):
    new = eval_output([[[1.0, 1.0]], [[1.0, 1.0]]])
    batch = loss_batch([1.0, 1.0])
    batch["logprob_old"] = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[B, H, A\]"):
        compute_loss(new, batch, algo_cfg("grpo"))


def test_entry_points_validate_the_config(algo_cfg):
    with pytest.raises(ConfigError, match="valid choices: token, action, chunk"):
        compute_advantages(ppo_data(), algo_cfg("ppo", logprob_level="sequence"))


def two_member_group_data():
    # One group (id 3) of two envs, two decisions each, both trajectories end at t=1.
    # env 0 rewards [5, 0] (all its return came BEFORE its second decision), env 1 rewards [0, 1].
    return {
        "reward": f([[5.0, 0.0], [0.0, 1.0]]),
        "value": f([[0.0, 0.0], [0.0, 0.0]]),
        "terminated": b([[0, 0], [1, 1]]),
        "truncated": b([[0, 0], [0, 0]]),
        "active": b([[1, 1], [1, 1]]),
        "bootstrap_value": f([[0.0, 0.0], [0.0, 0.0]]),
        "group_id": torch.tensor([[3, 3], [3, 3]]),
        "success": b([[0, 0], [0, 1]]),
        "last_value": f([0.0, 0.0]),
    }


def test_grpo_reward_to_go_uses_a_per_step_group_baseline(algo_cfg):
    cfg = algo_cfg("grpo", group_return="reward_to_go", group_std_normalize=False)
    out = compute_advantages(two_member_group_data(), cfg)
    # reward-to-go: env 0 [5, 0], env 1 [1, 1]; step baselines: t0 mean(5, 1) = 3, t1 mean(0, 1)
    # = 0.5. Episode-return GRPO would give env 0 +2 at BOTH decisions, though its second one
    # earned nothing.
    torch.testing.assert_close(out["advantages"], f([[2.0, -2.0], [-0.5, 0.5]]))
    torch.testing.assert_close(out["returns"], f([[5.0, 1.0], [0.0, 1.0]]))
    episode = compute_advantages(
        two_member_group_data(), algo_cfg("grpo", group_std_normalize=False)
    )
    torch.testing.assert_close(episode["advantages"], f([[2.0, -2.0], [2.0, -2.0]]))


def test_rloo_reward_to_go_is_leave_one_out_per_step(algo_cfg):
    cfg = algo_cfg("rloo", group_return="reward_to_go")
    out = compute_advantages(two_member_group_data(), cfg)
    # two members: A = G_i - G_other at each step
    torch.testing.assert_close(out["advantages"], f([[4.0, -4.0], [-1.0, 1.0]]))


def test_unknown_group_return_names_the_choices(algo_cfg):
    with pytest.raises(ConfigError, match="episode, reward_to_go"):
        compute_advantages(two_member_group_data(), algo_cfg("grpo", group_return="future"))

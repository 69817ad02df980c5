"""What the learner measures and controls around an update: post-update KL, KL early stop,
adaptive lr, per-group gradient clipping, critic warm-up without policy momentum, gradient SNR."""

import math

import pytest
import torch

from rl_post.algorithms.update_size import decision_log_ratio, gaussian_kl_parts, k3
from rl_post.config import ConfigError
from rl_post.learner.learner import Learner
from rl_post.models.policy import EvalOutput

from .tiny import TinyGaussianPolicy, algo_config, flat_params, learner_config, make_batch


class DetachedCriticPolicy(TinyGaussianPolicy):
    """The value head reads a detached trunk: the critic's gradient never reaches policy weights."""

    def evaluate(self, obs: dict, stored: dict) -> EvalOutput:
        out = super().evaluate(obs, stored)
        hidden = self.trunk(obs["state"]).detach()
        out.value = self.value_head(hidden).squeeze(-1)
        return out


def on_policy(batch: dict, policy: torch.nn.Module) -> dict:
    """The batch with logprob_old = the policy's current log-probs (ratio exactly 1)."""
    with torch.no_grad():
        batch["logprob_old"] = policy.evaluate(batch["obs"], batch["stored"]).logprob
    return batch


def test_post_update_kl_is_measured_after_the_step_and_matches_a_direct_recomputation():
    policy = TinyGaussianPolicy()
    batch = on_policy(make_batch(24), policy)
    algo = algo_config(update_epochs=1, num_minibatches=1, lr=3e-2)
    learner = Learner(policy, algo, learner_config(micro_batch_size=64, post_update_samples=1000))
    stats = learner.update(batch)
    # The in-loss statistics are measured before the only step: blind by construction.
    assert stats["approx_kl"] == 0.0 and stats["kl_decision"] == 0.0
    with torch.no_grad():
        new = policy.evaluate(batch["obs"], batch["stored"]).logprob
    keep = batch["mask"] > 0
    expected = float(k3(decision_log_ratio(new, batch["logprob_old"]))[keep].mean())
    assert stats["post_kl"] > 1e-4
    assert math.isclose(stats["post_kl"], expected, rel_tol=1e-5)
    ratio = torch.exp(new - batch["logprob_old"])[keep]
    assert math.isclose(stats["post_ratio_max"], float(ratio.max()), rel_tol=1e-5)
    assert math.isclose(stats["post_ratio_mean"], float(ratio.mean()), rel_tol=1e-5)


def test_target_kl_stops_the_epochs_before_the_step_that_would_exceed_it():
    batch = make_batch(24)
    algo = dict(update_epochs=4, num_minibatches=2, lr=3e-2)
    free = Learner(TinyGaussianPolicy(), algo_config(**algo), learner_config())
    free_policy = TinyGaussianPolicy()
    free_stats = Learner(free_policy, algo_config(**algo), learner_config()).update(
        on_policy(make_batch(24), free_policy)
    )
    assert free_stats["num_updates"] == 8 and free_stats["early_stopped"] == 0.0
    del free
    policy = TinyGaussianPolicy()
    learner = Learner(policy, algo_config(target_kl=1e-9, **algo), learner_config())
    stats = learner.update(on_policy(batch, policy))
    # The first minibatch is on-policy (KL 0) and steps; the second sees KL > 1e-9 and stops.
    assert stats["num_updates"] == 1 and stats["early_stopped"] == 1.0
    assert stats["epochs_run"] == 1.0


def test_adaptive_lr_steers_toward_the_kl_target():
    def next_lr(target: float) -> float:
        policy = TinyGaussianPolicy()
        adaptive = dict(enabled=True, target_kl=target, factor=2.0, min_lr=1e-6, max_lr=1.0)
        algo = algo_config(lr=1e-2, adaptive_lr=adaptive)
        learner = Learner(policy, algo, learner_config())
        stats = learner.update(on_policy(make_batch(24), policy))
        assert stats["lr"] == 1e-2  # this update ran at the old lr
        groups = {g["name"]: g["lr"] for g in learner.optimizer.param_groups}
        assert groups["policy"] == stats["lr_next"]
        return stats["lr_next"]

    assert next_lr(1e-9) == 5e-3  # far above target: halve
    assert next_lr(1e3) == 2e-2  # far below target: double


def test_a_huge_critic_gradient_does_not_shrink_the_policy_step():
    def mean_head_step(value_coef: float) -> torch.Tensor:
        policy = DetachedCriticPolicy()
        before = flat_params(policy.mean)
        algo = algo_config(
            update_epochs=1, num_minibatches=1, value_coef=value_coef, max_grad_norm=0.5
        )
        stats = Learner(policy, algo, learner_config()).update(make_batch(24))
        assert stats["grad_norm_policy"] > 0 and stats["grad_norm_value"] > 0
        return flat_params(policy.mean) - before

    torch.testing.assert_close(mean_head_step(1e6), mean_head_step(1.0), rtol=1e-6, atol=1e-9)


def test_critic_warmup_leaves_no_policy_momentum_for_the_first_real_step():
    batch = make_batch(24)
    settings = dict(update_epochs=1, num_minibatches=1)
    warmed = DetachedCriticPolicy()
    learner = Learner(warmed, algo_config(**settings), learner_config(micro_batch_size=64))
    for _ in range(3):
        learner.update(make_batch(24, seed=7), policy_lr_scale=0.0)
    before = flat_params(warmed.mean)
    stats = learner.update(batch)
    assert stats["policy_optimizer_reset"] > 0
    warmed_step = flat_params(warmed.mean) - before

    fresh = DetachedCriticPolicy()
    start = flat_params(fresh.mean)
    Learner(fresh, algo_config(**settings), learner_config(micro_batch_size=64)).update(batch)
    torch.testing.assert_close(warmed_step, flat_params(fresh.mean) - start, rtol=1e-5, atol=1e-9)


def test_gradient_snr_of_two_identical_halves_has_no_noise():
    policy = TinyGaussianPolicy()
    half = make_batch(12)
    batch = {
        "obs": {
            "state": torch.cat([half["obs"]["state"]] * 2),
            "instruction": half["obs"]["instruction"] * 2,
        },
        "stored": {"actions": torch.cat([half["stored"]["actions"]] * 2)},
        **{k: torch.cat([half[k]] * 2) for k in ("advantages", "returns", "values_old", "mask")},
        # each copy is one unit: the two splits get one identical copy each
        "split_key": torch.tensor([0] * 12 + [1] * 12),
    }
    on_policy(batch, policy)
    learner = Learner(policy, algo_config(), learner_config(grad_snr_every=1, grad_snr_splits=2))
    stats = learner.update(batch)
    assert math.isclose(stats["grad_snr_cosine"], 1.0, rel_tol=1e-5)
    assert stats["grad_snr_noise"] < 1e-10 * stats["grad_snr_signal"]
    assert stats["grad_snr_units"] == 2.0


def test_gradient_snr_is_near_zero_for_random_advantages_and_high_for_a_consistent_one():
    def snr(advantages: torch.Tensor) -> float:
        policy = TinyGaussianPolicy()
        batch = make_batch(400, seed=3)
        batch["mask"] = torch.ones(400)
        batch["advantages"] = advantages
        on_policy(batch, policy)
        learner = Learner(
            policy, algo_config(), learner_config(grad_snr_every=1, micro_batch_size=128)
        )
        return learner.update(batch)["grad_snr"]

    gen = torch.Generator().manual_seed(0)
    noise_only = snr(torch.randn(400, generator=gen))
    # advantage = +1 on every sample: every sample pushes the same parameters the same way
    # (raise the log-prob of its own action), a strong shared direction through the log-std
    consistent = snr(torch.ones(400))
    assert consistent > 10 * max(noise_only, 0.1)


def test_kl_grain_token_steers_on_the_per_token_kl():
    def update(**algo):
        policy = TinyGaussianPolicy()
        learner = Learner(policy, algo_config(lr=1e-2, **algo), learner_config())
        return learner.update(on_policy(make_batch(24), policy))

    probe = update()
    per_decision, per_token = probe["post_kl"], probe["post_kl_token"]
    assert per_decision > 4 * per_token  # 6 tokens per decision
    target = (per_decision * per_token) ** 0.5  # above 2x per token, below per decision / 2
    adaptive = dict(enabled=True, target_kl=target, factor=2.0, min_lr=1e-6, max_lr=1.0)
    assert update(adaptive_lr=adaptive, kl_grain="token")["lr_next"] == 2e-2
    assert update(adaptive_lr=adaptive, kl_grain="decision")["lr_next"] == 5e-3


def test_kl_parts_are_the_closed_form_split_of_the_update():
    policy = TinyGaussianPolicy()
    batch = on_policy(make_batch(24), policy)
    with torch.no_grad():
        before = policy.evaluate(batch["obs"], batch["stored"]).gaussians
    algo = algo_config(update_epochs=1, num_minibatches=1, lr=3e-2)
    stats = Learner(policy, algo, learner_config(post_update_samples=1000)).update(batch)
    with torch.no_grad():
        after = policy.evaluate(batch["obs"], batch["stored"]).gaussians
    keep = batch["mask"] > 0
    mean_part, std_part = gaussian_kl_parts(
        before.mean[keep].double(),
        before.std[keep].double(),
        after.mean[keep].double(),
        after.std[keep].double(),
    )
    decisions = int(keep.sum())
    assert stats["post_kl_mean_part"] == pytest.approx(float(mean_part.sum()) / decisions)
    assert stats["post_kl_std_part"] == pytest.approx(float(std_part.sum()) / decisions)
    tokens = decisions * before.mean.shape[1] * before.mean.shape[3]
    assert stats["post_kl_token_mean_part"] == pytest.approx(float(mean_part.sum()) / tokens)
    assert stats["post_kl_mean_part"] > 0 and stats["post_kl_std_part"] > 0


def test_adaptive_lr_on_the_mean_part_ignores_a_noise_head_trained_apart():
    def update(**adaptive):
        policy = TinyGaussianPolicy()
        algo = algo_config(lr=1e-3, noise_lr=0.3, adaptive_lr=adaptive)
        learner = Learner(policy, algo, learner_config(noise_param_names=["log_std"]))
        return learner.update(on_policy(make_batch(24), policy))

    probe = update(**{**algo_config()["adaptive_lr"], "enabled": False})
    mean_kl, std_kl = probe["post_kl_mean_part"], probe["post_kl_std_part"]
    assert std_kl > 16 * mean_kl  # the noise head's big lr makes the std change dominate
    target = (mean_kl * (mean_kl + std_kl)) ** 0.5  # above 2x the mean part, below total / 2
    adaptive = dict(enabled=True, target_kl=target, factor=2.0, min_lr=1e-6, max_lr=1.0)
    assert update(**adaptive, kl_part="total")["lr_next"] == 5e-4
    assert update(**adaptive, kl_part="mean")["lr_next"] == 2e-3


def test_kl_part_mean_needs_a_gaussian_policy():
    class NoGaussians(TinyGaussianPolicy):
        has_step_gaussians = False

    adaptive = {**algo_config()["adaptive_lr"], "enabled": True, "kl_part": "mean"}
    algo = algo_config(lr=1e-4, adaptive_lr=adaptive)
    with pytest.raises(ConfigError, match="kl_part=total"):
        Learner(NoGaussians(), algo, learner_config())

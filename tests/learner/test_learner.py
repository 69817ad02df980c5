"""Learner on one CPU rank (gloo, DeepSpeed engine per test: ~1-3 s each)."""

import math

import pytest
import torch

from rl_post.learner.learner import Learner

from .tiny import (
    CONFIG_DIR,
    TinyGaussianPolicy,
    algo_config,
    all_finite,
    flat_params,
    learner_config,
    make_batch,
    on_policy_batch,
)


def test_one_update_changes_weights_and_reports_finite_stats():
    policy = TinyGaussianPolicy()
    before = flat_params(policy)
    learner = Learner(policy, algo_config(), learner_config())
    stats = learner.update(make_batch())
    assert not torch.equal(flat_params(policy), before)
    assert all_finite(stats)
    assert stats["num_updates"] == 4  # 2 epochs x 2 minibatches
    assert stats["micro_batches_per_step"] == 3  # 12 per minibatch / micro_batch_size 4
    assert stats["grad_norm"] > 0
    assert stats["lr"] == 3e-3 and stats["lr_value"] == 1e-2


def test_loss_decreases_on_a_fixed_batch():
    algo = algo_config(update_epochs=1, num_minibatches=1, entropy_coef=0.0)
    learner = Learner(TinyGaussianPolicy(), algo, learner_config())
    batch = make_batch()
    losses = [learner.update(batch)["total_loss"] for _ in range(6)]
    assert losses[-1] < losses[0] - 0.05, losses


def test_value_head_has_its_own_learning_rate():
    policy = TinyGaussianPolicy()
    learner = Learner(policy, algo_config(lr=1e-3, value_lr=5e-3), learner_config())
    groups = {g["name"]: g for g in learner.optimizer.param_groups}
    assert groups["policy"]["lr"] == 1e-3 and groups["value"]["lr"] == 5e-3
    value_ids = {id(p) for p in policy.value_head.parameters()}
    assert {id(p) for p in groups["value"]["params"]} == value_ids
    assert not value_ids & {id(p) for p in groups["policy"]["params"]}


def _first_step(**learner_overrides) -> tuple[torch.Tensor, torch.Tensor]:
    """(policy-head step, value-head step) of one plain AdamW step from the same start."""
    algo = algo_config(update_epochs=1, num_minibatches=1, max_grad_norm=1e9)
    policy = TinyGaussianPolicy()
    mean_before, value_before = flat_params(policy.mean), flat_params(policy.value_head)
    Learner(policy, algo, learner_config(**learner_overrides)).update(make_batch())
    return mean_before - flat_params(policy.mean), value_before - flat_params(policy.value_head)


def test_policy_adam_eps_turns_the_policy_step_into_sgd_and_leaves_the_critic_on_adam():
    # First AdamW step: m_hat = g, v_hat = g^2, step = lr * g / (|g| + eps).
    lr = algo_config()["lr"]
    adam_step, adam_value_step = _first_step()
    eps1_step, eps1_value_step = _first_step(policy_adam_eps=1.0)
    eps2_step, _ = _first_step(policy_adam_eps=2.0)
    moved = adam_step.abs() > 0
    # eps 1e-8: every weight moves by ~lr whatever its gradient (sign-like)
    assert torch.allclose(adam_step[moved].abs(), torch.full_like(adam_step[moved], lr), rtol=1e-3)
    # eps 1: recover g from the step and predict the eps-2 step exactly
    a = eps1_step / lr
    grad = a / (1 - a.abs())
    # (float32 weights ~0.3 minus steps ~1e-5: compare at 1% plus a few ulps)
    assert torch.allclose(eps2_step, lr * grad / (grad.abs() + 2.0), rtol=1e-2, atol=1e-7)
    assert eps1_step.abs().max() < 0.5 * lr  # proportional to small gradients, not to their sign
    assert torch.equal(eps1_value_step, adam_value_step)


def test_policy_lr_scale_zero_fits_only_the_critic_and_restores_the_lr():
    policy = TinyGaussianPolicy()
    value_ids = {id(p) for p in policy.value_head.parameters()}
    policy_before = [p.detach().clone() for p in policy.parameters() if id(p) not in value_ids]
    value_before = flat_params(policy.value_head)
    learner = Learner(policy, algo_config(), learner_config())
    stats = learner.update(make_batch(), policy_lr_scale=0.0)
    policy_after = [p for p in policy.parameters() if id(p) not in value_ids]
    assert all(torch.equal(a, b) for a, b in zip(policy_after, policy_before, strict=True))
    assert not torch.equal(flat_params(policy.value_head), value_before)
    assert stats["policy_lr_scale"] == 0.0
    groups = {g["name"]: g["lr"] for g in learner.optimizer.param_groups}
    assert groups == {"policy": 3e-3, "value": 1e-2}
    learner.update(make_batch())
    assert not all(torch.equal(a, b) for a, b in zip(policy_after, policy_before, strict=True))


def test_noise_lr_trains_the_noise_parameters_with_plain_adam_apart_from_the_policy_group():
    # log_std plays the flow policy's noise head here: with policy_adam_eps 1 the policy group is
    # momentum SGD, and algo.noise_lr gives the noise parameters their own Adam group
    algo = algo_config(update_epochs=1, num_minibatches=1, max_grad_norm=1e9, noise_lr=1e-2)
    learner_cfg = learner_config(policy_adam_eps=1.0, noise_param_names=["log_std"])
    policy = TinyGaussianPolicy()
    log_std_before = policy.log_std.detach().clone()
    learner = Learner(policy, algo, learner_cfg)
    groups = {g["name"]: g for g in learner.optimizer.param_groups}
    assert [id(p) for p in groups["noise"]["params"]] == [id(policy.log_std)]
    assert id(policy.log_std) not in {id(p) for p in groups["policy"]["params"]}
    assert groups["noise"]["lr"] == 1e-2 and groups["noise"]["eps"] == 1e-8
    # critic warm-up (policy_lr_scale 0) leaves the noise alone and restores its lr
    stats = learner.update(make_batch(), policy_lr_scale=0.0)
    assert torch.equal(policy.log_std.detach(), log_std_before)
    assert groups["noise"]["lr"] == 1e-2 and stats["lr_noise"] == 0.0
    # first real step after the warm-up: Adam state reset, so every log_std moves by ~noise_lr
    stats = learner.update(make_batch())
    step = (policy.log_std.detach() - log_std_before).abs()
    assert torch.allclose(step, torch.full_like(step, 1e-2), rtol=1e-3)
    assert stats["lr_noise"] == 1e-2 and stats["grad_norm_noise"] > 0


def test_without_noise_lr_the_noise_parameters_stay_in_the_policy_group():
    policy = TinyGaussianPolicy()
    learner = Learner(policy, algo_config(), learner_config(noise_param_names=["log_std"]))
    groups = {g["name"]: g for g in learner.optimizer.param_groups}
    assert set(groups) == {"policy", "value"}
    assert id(policy.log_std) in {id(p) for p in groups["policy"]["params"]}


def test_micro_batching_matches_one_big_micro_batch():
    """Gradient accumulation with masked rows and padding (23 samples) equals one pass."""
    batch = {k: v for k, v in make_batch(23).items()}
    results = []
    for micro in (3, 64):
        policy = TinyGaussianPolicy()
        learner = Learner(policy, algo_config(), learner_config(micro_batch_size=micro))
        stats = learner.update(batch)
        results.append((flat_params(policy), stats))
    (small, small_stats), (big, big_stats) = results
    assert small_stats["micro_batches_per_step"] > 1 and big_stats["micro_batches_per_step"] == 1
    torch.testing.assert_close(small, big, rtol=1e-5, atol=1e-6)
    # grad_norm catches a wrong overall gradient scale, which Adam would hide in the weights
    for key in ("policy_loss", "value_loss", "entropy", "total_loss", "grad_norm"):
        assert abs(small_stats[key] - big_stats[key]) < 1e-5, key


def test_zero_stage_2_matches_stage_0():
    batch = make_batch()
    weights = []
    for stage in (0, 2):
        policy = TinyGaussianPolicy()
        learner = Learner(policy, algo_config(), learner_config(zero_stage=stage))
        learner.update(batch)
        weights.append(torch.cat([t.flatten() for t in learner.policy_state().values()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


def test_policy_state_is_a_cpu_copy_of_trainable_weights():
    policy = TinyGaussianPolicy()
    learner = Learner(policy, algo_config(), learner_config())
    state = learner.policy_state()
    assert set(state) == {name for name, _ in policy.named_parameters()}
    state["log_std"].add_(1.0)  # a copy: publishing must not alias live weights
    assert not torch.equal(state["log_std"], policy.log_std.detach())
    assert all(t.device.type == "cpu" for t in state.values())


def test_save_load_round_trip_makes_the_next_update_identical(tmp_path):
    batch = make_batch()
    first = Learner(TinyGaussianPolicy(seed=0), algo_config(), learner_config())
    first.update(batch)
    first.save(tmp_path / "ckpt")
    expected_stats = first.update(batch)
    expected = first.policy_state()

    second_policy = TinyGaussianPolicy(seed=7)  # different init: everything must come from disk
    second = Learner(second_policy, algo_config(), learner_config())
    second.load(tmp_path / "ckpt")
    assert second.num_updates == 4 and second.num_update_calls == 1
    stats = second.update(batch)
    for name, tensor in second.policy_state().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
    assert stats.keys() == expected_stats.keys()
    for key, value in stats.items():
        if key.startswith("time_"):  # wall-clock phase timers differ from run to run
            continue
        assert value == expected_stats[key] or (
            math.isnan(value) and math.isnan(expected_stats[key])
        )


def test_frozen_reference_does_not_train_and_feeds_kl():
    policy = TinyGaussianPolicy()
    initial = flat_params(policy)
    learner = Learner(policy, algo_config(kl_coef=0.1), learner_config())
    assert learner.reference is not None
    assert not any(p.requires_grad for p in learner.reference.module.parameters())
    stats = [learner.update(make_batch()) for _ in range(2)][-1]
    assert torch.equal(flat_params(learner.reference.module), initial)
    assert not torch.equal(flat_params(policy), initial)
    assert stats["kl"] > 0  # second update: the policy has moved away from the reference


def test_bf16_autocast_update_is_finite():
    policy = TinyGaussianPolicy()
    learner = Learner(policy, algo_config(), learner_config(precision="bf16"))
    stats = learner.update(make_batch())
    assert all_finite(stats)
    assert policy.log_std.dtype == torch.float32  # master weights stay fp32


def test_update_with_the_real_flow_policy():
    """The learner drives a policy from rl_post.models.factory on its own act() outputs."""
    from omegaconf import OmegaConf

    from rl_post.envs.spec import ObsSpec
    from rl_post.models.factory import build_policy

    torch.manual_seed(0)
    model_cfg = OmegaConf.load(CONFIG_DIR / "model" / "flow_tiny.yaml")
    policy = build_policy(model_cfg, ObsSpec(state_dim=9, action_dim=4))
    obs = {"state": torch.randn(8, 9), "instruction": ["pick up the cube"] * 8}
    batch = on_policy_batch(policy, obs, torch.randn(8))
    batch["returns"] = torch.randn(8)  # a constant target would make explained variance 0/0
    before = flat_params(policy)
    learner = Learner(policy, algo_config(num_minibatches=1, update_epochs=1), learner_config())
    groups = {g["name"]: g for g in learner.optimizer.param_groups}
    assert {id(p) for p in groups["value"]["params"]} == {
        id(p) for p in policy.value_head.parameters()
    }
    stats = learner.update(batch)
    assert all_finite(stats)
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-3)  # first pass is on-policy
    assert not torch.equal(flat_params(policy), before)


def test_frozen_modules_stay_fixed_through_an_update():
    from omegaconf import OmegaConf

    from rl_post.envs.spec import ObsSpec
    from rl_post.models.factory import build_policy

    torch.manual_seed(0)
    model_cfg = OmegaConf.merge(
        OmegaConf.load(CONFIG_DIR / "model" / "flow_tiny.yaml"), {"frozen_modules": ["backbone"]}
    )
    policy = build_policy(model_cfg, ObsSpec(state_dim=9, action_dim=4))
    obs = {"state": torch.randn(8, 9), "instruction": ["pick up the cube"] * 8}
    batch = on_policy_batch(policy, obs, torch.randn(8))
    backbone, expert = flat_params(policy.backbone), flat_params(policy.expert)
    learner = Learner(policy, algo_config(num_minibatches=1, update_epochs=1), learner_config())
    learner.update(batch)
    assert torch.equal(flat_params(policy.backbone), backbone)
    assert not torch.equal(flat_params(policy.expert), expert)
    assert not any(name.startswith("backbone.") for name in learner.policy_state())

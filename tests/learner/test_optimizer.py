"""GroupClippedAdamW: one clip per group, a skippable step, resettable moments."""

import math

import torch

from rl_post.learner.optimizer import GroupClippedAdamW


def _optimizer(policy_clip=None, value_clip=None):
    policy, value = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    groups = [
        {"params": [policy], "name": "policy", "max_grad_norm": policy_clip, "lr": 0.1},
        {"params": [value], "name": "value", "max_grad_norm": value_clip, "lr": 0.1},
    ]
    opt = GroupClippedAdamW(groups, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    return opt, policy, value


def test_each_group_is_clipped_to_its_own_norm():
    opt, policy, value = _optimizer(policy_clip=1.0, value_clip=10.0)
    policy.grad = torch.tensor([3.0, 4.0])  # norm 5 -> clipped to 1
    value.grad = torch.tensor([300.0, 400.0])  # norm 500 -> clipped to 10, not affecting policy
    opt.skip = True  # look at the clipped gradients without stepping
    opt.step()
    assert opt.group_norms == {"policy": 5.0, "value": 500.0}
    assert torch.allclose(policy.grad, torch.tensor([0.6, 0.8]), atol=1e-6)
    assert torch.allclose(value.grad, torch.tensor([6.0, 8.0]), atol=1e-5)


def test_skipped_step_moves_neither_weights_nor_moments():
    opt, policy, value = _optimizer()
    policy.grad, value.grad = torch.ones(2), torch.ones(2)
    opt.skip = True
    opt.step()
    assert torch.equal(policy, torch.zeros(2)) and not opt.state
    opt.skip = False
    opt.step()
    assert not torch.equal(policy, torch.zeros(2)) and len(opt.state) == 2


def test_reset_group_state_restarts_adam_for_that_group_only():
    opt, policy, value = _optimizer()
    for _ in range(3):
        policy.grad, value.grad = torch.ones(2), torch.ones(2)
        opt.step()
    assert opt.reset_group_state("policy") == 1
    assert policy not in opt.state and value in opt.state
    before = policy.detach().clone()
    policy.grad = torch.tensor([1.0, -1.0])
    opt.step()
    # A fresh Adam's first step is lr * sign(g) (m_hat = g, v_hat = g^2)
    assert torch.allclose(policy - before, torch.tensor([-0.1, 0.1]), atol=1e-6)
    assert math.isclose(float(opt.state[policy]["step"]), 1.0)


def test_cpu_step_uses_the_multi_tensor_kernels_and_matches_the_per_tensor_loop():
    def run(foreach: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
        opt = GroupClippedAdamW(
            [{"params": params, "name": "policy", "max_grad_norm": 0.5}],
            lr=0.01,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=0.01,
        )
        assert opt.param_groups[0]["foreach"] is True  # torch's CPU default is the Python loop
        opt.param_groups[0]["foreach"] = foreach
        for step in range(3):
            for p in params:
                p.grad = torch.full_like(p, float(step + 1))
            opt.step()
        return [p.detach().clone() for p in params]

    for fast, slow in zip(run(True), run(False), strict=True):
        assert torch.allclose(fast, slow, atol=1e-7)

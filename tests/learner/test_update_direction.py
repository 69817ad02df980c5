"""The learner moves each real policy family in the direction of its advantages: after one update
on the policy's own samples, chains with positive advantage gained log-likelihood relative to
chains with negative advantage. (A sign or bookkeeping error anywhere between act(), the stored
sample and evaluate() makes RL silently unlearn; this is the end-to-end check of that path.)"""

import pytest
import torch
from omegaconf import OmegaConf

from rl_post.envs.spec import ObsSpec
from rl_post.learner.learner import Learner
from rl_post.models.factory import build_policy

from .tiny import CONFIG_DIR, algo_config, learner_config, on_policy_batch

BATCH = 32


def sample_log_likelihood(policy, obs: dict, stored: dict) -> torch.Tensor:
    with torch.no_grad():
        return policy.evaluate(obs, stored).logprob.flatten(1).sum(dim=1)


@pytest.mark.parametrize(
    ("model", "overrides"),
    [
        ("flow_tiny", {"sampler": "flow_noise"}),
        ("flow_tiny", {"sampler": "flow_sde", "noise_level": 0.3}),
        (
            "flow_tiny",
            {"sampler": "flow_sde", "likelihood_actions": "executed", "action_horizon": 8},
        ),
        ("token_tiny", {}),
        ("mlp_gaussian", {}),
    ],
)
def test_update_raises_likelihood_of_positive_advantage_samples(model, overrides):
    torch.manual_seed(0)
    model_cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "model" / f"{model}.yaml"), overrides)
    policy = build_policy(model_cfg, ObsSpec(state_dim=9, action_dim=4))
    obs = {"state": torch.randn(BATCH, 9), "instruction": ["pick up the cube"] * BATCH}
    advantages = torch.tensor([1.0, -1.0]).repeat(BATCH // 2)
    batch = on_policy_batch(policy, obs, advantages)
    before = sample_log_likelihood(policy, obs, batch["stored"])
    algo = algo_config(
        num_minibatches=1, update_epochs=1, lr=1e-3, entropy_coef=0.0, normalize_advantages=False
    )
    Learner(policy, algo, learner_config()).update(batch)
    gain = sample_log_likelihood(policy, obs, batch["stored"]) - before
    assert gain[advantages > 0].mean() > gain[advantages < 0].mean() + 1e-3


def test_ppo_update_moves_the_gaussian_mean_toward_positive_advantage_actions():
    """One state, advantage = +1 for samples above the mean in action dim 0 and -1 below: a PPO
    update must raise the mean of dim 0 (and leave the direction of the other dims to chance)."""
    torch.manual_seed(0)
    model_cfg = OmegaConf.load(CONFIG_DIR / "model" / "mlp_gaussian.yaml")
    policy = build_policy(model_cfg, ObsSpec(state_dim=9, action_dim=4))
    size = 256
    obs = {"state": torch.randn(1, 9).expand(size, 9).clone(), "instruction": [""] * size}
    with torch.no_grad():
        before = policy.act(obs, "deterministic").actions[0, 0]
    batch = on_policy_batch(policy, obs, torch.zeros(size))
    batch["advantages"] = torch.sign(batch["stored"]["sample"][:, 0, 0] - before[0])
    algo = algo_config(
        num_minibatches=4, update_epochs=2, lr=1e-3, entropy_coef=0.0, logprob_level="action"
    )
    Learner(policy, algo, learner_config(micro_batch_size=64)).update(batch)
    with torch.no_grad():
        after = policy.act(obs, "deterministic").actions[0, 0]
    assert after[0] - before[0] > 0.05
    assert (after[0] - before[0]).abs() > 3 * (after[1:] - before[1:]).abs().max()

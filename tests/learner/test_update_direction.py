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

"""Behaviour cloning on a tiny synthetic dataset lowers the held-out validation loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_post.config import load_config
from rl_post.data.demos import DemoEpisode
from rl_post.envs.spec import ObsSpec
from rl_post.models.factory import build_policy
from rl_post.sft.dataset import build_bc_data
from rl_post.sft.train import normalization_from, parse_sft_settings, train_bc
from tests.sft.tiny import tiny_overrides

STATE_DIM, ACTION_DIM = 3, 2


def synthetic_episode(seed: int, length: int = 12) -> DemoEpisode:
    """Actions are a fixed smooth function of the state, so they are learnable."""
    rng = np.random.default_rng(seed)
    state = rng.normal(size=(length, STATE_DIM)).astype(np.float32)
    weights = np.array([[0.8, -0.5], [0.3, 0.9], [-0.6, 0.2]], dtype=np.float32)
    return DemoEpisode(
        task="PickCube-v1",
        seed=seed,
        instruction="pick up the cube",
        state=state,
        actions=np.tanh(state @ weights),
        success=True,
    )


# The token policy learns this toy mapping far more slowly than the flow policy (cross-entropy
# over bins from 72 samples), so its bar is a smaller but still strict improvement.
@pytest.mark.parametrize(("model", "max_ratio"), [("flow_tiny", 0.8), ("token_tiny", 0.97)])
def test_sft_lowers_validation_loss(model, max_ratio):
    kind = model.split("_")[0]
    cfg = load_config(
        "sft",
        [
            f"model={model}",
            "sft.steps=60",
            "sft.batch_size=32",
            "sft.lr=3e-3",
            "sft.warmup_steps=5",
            "sft.val_every=30",
            "sft.log_every=30",
            *tiny_overrides(kind),
        ],
    )
    settings = parse_sft_settings(cfg)
    horizon = int(cfg.model.action_horizon)
    train = build_bc_data([synthetic_episode(s) for s in range(6)], horizon, STATE_DIM, False)
    val = build_bc_data([synthetic_episode(s) for s in (100, 101)], horizon, STATE_DIM, False)
    spec = ObsSpec(STATE_DIM, ACTION_DIM, action_low=(-1.0,) * 2, action_high=(1.0,) * 2)
    torch.manual_seed(0)
    policy = build_policy(cfg.model, spec)
    policy.set_normalization(normalization_from(train, settings.action_quantiles))
    best_steps: list[int] = []
    result = train_bc(
        policy, train, val, settings, on_best=lambda step, loss: best_steps.append(step)
    )
    assert result["final_val_loss"] < max_ratio * result["initial_val_loss"]
    assert result["best_val_loss"] <= result["final_val_loss"]
    assert best_steps and best_steps[0] == 30
    assert [r["step"] for r in result["history"]] == [30, 60]

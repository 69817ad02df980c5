"""Behaviour cloning on a tiny synthetic dataset lowers the held-out validation loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_post.config import ConfigError, load_config
from rl_post.data.demos import DemoEpisode
from rl_post.envs.spec import ObsSpec
from rl_post.models.factory import build_policy
from rl_post.sft.dataset import build_bc_data
from rl_post.sft.train import (
    augment_state,
    normalization_from,
    parse_sft_settings,
    state_noise_scale,
    train_bc,
)
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
# over bins from 72 samples), so its bar is a smaller but still strict improvement. The Gaussian
# MLP's loss is an NLL (it can go negative): its bar is an absolute drop of 0.5 nats per dim.
@pytest.mark.parametrize(
    ("model", "max_ratio"), [("flow_tiny", 0.8), ("token_tiny", 0.97), ("mlp_gaussian", None)]
)
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
    if max_ratio is not None:
        assert result["final_val_loss"] < max_ratio * result["initial_val_loss"]
    else:
        assert result["final_val_loss"] < result["initial_val_loss"] - 0.5  # nats per dim
    assert result["best_val_loss"] <= result["final_val_loss"]
    assert best_steps and best_steps[0] == 30
    assert [r["step"] for r in result["history"]] == [30, 60]


def test_state_noise_scale_uses_floored_std_and_skips_constant_dims():
    states = np.array([[0.0, 1.0, 5.0], [2.0, 1.001, 5.0]], dtype=np.float32)
    episode = DemoEpisode("PickCube-v1", 0, "pick", states, np.zeros((2, 2), np.float32), True)
    data = build_bc_data([episode], 1, STATE_DIM, False)
    scale = state_noise_scale(data, noise_std=0.5, state_std_floor=0.05)
    # std: dim0 = 1.0, dim1 = 0.0005 -> floored to 0.05, dim2 = 0 (constant, e.g. padding)
    torch.testing.assert_close(scale, torch.tensor([0.5, 0.025, 0.0]), atol=1e-6, rtol=0)


def test_augment_state_adds_scaled_gaussian_noise():
    generator = torch.Generator().manual_seed(0)
    state = torch.zeros(20000, 2)
    noisy = augment_state(state, torch.tensor([0.2, 0.0]), generator)
    assert abs(float(noisy[:, 0].std()) - 0.2) < 0.01
    assert bool((noisy[:, 1] == 0).all())


def test_negative_state_noise_is_a_config_error():
    cfg = load_config("sft", ["sft.state_noise_std=-0.1"])
    with pytest.raises(ConfigError, match="state_noise_std"):
        parse_sft_settings(cfg)


def test_train_bc_feeds_noisy_states_only_when_asked():
    episodes = [synthetic_episode(s) for s in range(2)]
    data = build_bc_data(episodes, 4, STATE_DIM, False)
    spec = ObsSpec(STATE_DIM, ACTION_DIM, action_low=(-1.0,) * 2, action_high=(1.0,) * 2)

    def seen_states(noise_std: float) -> torch.Tensor:
        cfg = load_config(
            "sft",
            [
                "model=flow_tiny",
                "sft.steps=2",
                "sft.batch_size=8",
                "sft.log_every=1",
                f"sft.state_noise_std={noise_std}",
                *tiny_overrides("flow"),
            ],
        )
        policy = build_policy(cfg.model, spec)
        seen: list[torch.Tensor] = []
        original = policy.bc_loss

        def recording_bc_loss(obs, chunks, mask):
            seen.append(obs["state"].clone())
            return original(obs, chunks, mask)

        policy.bc_loss = recording_bc_loss
        train_bc(policy, data, None, parse_sft_settings(cfg))
        return torch.cat(seen)

    def distance_to_data(states: torch.Tensor) -> torch.Tensor:
        return torch.cdist(states, data.state).min(dim=1).values

    assert float(distance_to_data(seen_states(0.0)).max()) == 0.0
    assert float(distance_to_data(seen_states(0.5)).min()) > 0.0


def test_done_line_rounds_losses_and_says_when_there_is_no_validation(tmp_path):
    from rl_post.sft.train import sft_done_line

    result = {
        "seconds": 12.34567,
        "initial_val_loss": 0.8123456789012345,
        "final_val_loss": 0.05123456789012345,
        "best_val_loss": 0.049876543210987654,
    }
    line = sft_done_line(result, tmp_path)
    assert "val loss 0.8123 -> 0.05123 (best 0.04988)" in line and "12.3s" in line
    assert "0.812345" not in line
    none = {**result, "initial_val_loss": None, "final_val_loss": None, "best_val_loss": None}
    assert "val loss n/a -> n/a (best n/a)" in sft_done_line(none, tmp_path)


def test_missing_demo_file_names_the_task_and_the_collect_command(tmp_path):
    from rl_post.sft.train import check_dataset_exists

    cfg = load_config("sft", ["env=pushcube"])
    with pytest.raises(ConfigError, match=r"collect-demos env.tasks=\[PushCube-v1\]"):
        check_dataset_exists(tmp_path / "PushCube-v1_state_pd_ee_delta_pose.h5", cfg.env)

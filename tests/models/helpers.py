"""Shared builders for the model tests: a small ObsSpec, obs batches and tiny model configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from rl_post.envs.spec import ObsSpec
from rl_post.models import build_policy
from rl_post.models.base_policy import VLAPolicyBase

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"
STATE_DIM, ACTION_DIM, IMAGE = 9, 4, 16
RGB_SPEC = ObsSpec(
    state_dim=STATE_DIM,
    action_dim=ACTION_DIM,
    cameras=("base_camera", "hand_camera"),
    image_size=(IMAGE, IMAGE),
    action_low=(-1.0, -1.0, -0.5, 0.0),
    action_high=(1.0, 1.0, 0.5, 2.0),
)
STATE_SPEC = ObsSpec(
    state_dim=STATE_DIM,
    action_dim=ACTION_DIM,
    action_low=RGB_SPEC.action_low,
    action_high=RGB_SPEC.action_high,
)
INSTRUCTIONS = ["pick up the red cube", "push the cube to the goal"]


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{name}.yaml"), resolve=True)
    assert isinstance(cfg, dict)
    cfg.update(overrides)
    return cfg


def make_policy(
    name: str, spec: ObsSpec = STATE_SPEC, seed: int = 0, **overrides: Any
) -> VLAPolicyBase:
    torch.manual_seed(seed)
    return build_policy(model_config(name, **overrides), spec)


def make_obs(n: int, rgb: bool = False, seed: int = 0, cameras: int = 2) -> dict[str, object]:
    gen = torch.Generator().manual_seed(seed)
    obs: dict[str, object] = {
        "state": torch.randn(n, STATE_DIM, generator=gen),
        "instruction": [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(n)],
    }
    if rgb:
        obs["rgb"] = torch.randint(
            0, 256, (n, cameras, IMAGE, IMAGE, 3), generator=gen, dtype=torch.uint8
        )
    return obs

"""ManiSkill observations -> a VLA's LeRobot inputs (model.obs): which env camera feeds which image
key, which obs["state"] entries form observation.state, which instruction is used; and the check
that the policy's action space is the env control mode's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.vla.config import VLAModelConfig

STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."


@dataclass(frozen=True)
class InputLayout:
    image_keys: tuple[str, ...]  # LeRobot image feature keys, in the policy's order
    camera_index: tuple[int, ...]  # for each image key, its index in obs["rgb"][:, v]
    state_indices: tuple[int, ...]  # entries of obs["state"] that form observation.state
    action_dim: int
    instruction: str | None

    @property
    def state_dim(self) -> int:
        return len(self.state_indices)


def input_layout(cfg: VLAModelConfig, spec: ObsSpec) -> InputLayout:
    mapping = dict(cfg.obs.cameras)
    if not spec.has_rgb:
        raise ConfigError(
            f"model={cfg.name} ({cfg.kind}) needs camera images; use env.obs_mode=rgb (or "
            "state_rgb) with env.cameras naming the cameras model.obs.cameras maps"
        )
    if not mapping:
        mapping = {f"{IMAGE_PREFIX}{camera}": camera for camera in spec.cameras}
    unknown = sorted({c for c in mapping.values() if c not in spec.cameras})
    if unknown:
        raise ConfigError(
            f"model.obs.cameras maps onto camera(s) {unknown} that the env does not render "
            f"(env.cameras={list(spec.cameras)}); add them to env.cameras or change the mapping"
        )
    bad_keys = sorted(k for k in mapping if not k.startswith(IMAGE_PREFIX))
    if bad_keys:
        raise ConfigError(
            f"model.obs.cameras keys {bad_keys} are not LeRobot image keys; they start with "
            f"'{IMAGE_PREFIX}' (e.g. {IMAGE_PREFIX}top)"
        )
    if cfg.obs.state_indices is None:
        indices = tuple(range(spec.state_dim))
    else:
        indices = tuple(int(i) for i in cfg.obs.state_indices)
        out_of_range = [i for i in indices if not 0 <= i < spec.state_dim]
        if out_of_range:
            raise ConfigError(
                f"model.obs.state_indices {out_of_range} are outside the env's state vector "
                f"(0..{spec.state_dim - 1})"
            )
    if len(indices) > cfg.max_state_dim:
        raise ConfigError(
            f"the env's state has {len(indices)} entries but {cfg.kind} takes at most "
            f"max_state_dim={cfg.max_state_dim}; pick the proprioceptive ones with "
            "model.obs.state_indices=[...]"
        )
    if spec.action_dim > cfg.max_action_dim:
        raise ConfigError(
            f"the env's control mode takes {spec.action_dim} action dims but {cfg.kind} "
            f"predicts at most max_action_dim={cfg.max_action_dim}"
        )
    return InputLayout(
        image_keys=tuple(mapping),
        camera_index=tuple(spec.cameras.index(c) for c in mapping.values()),
        state_indices=indices,
        action_dim=spec.action_dim,
        instruction=cfg.obs.instruction,
    )


def check_action_dims(checkpoint_dim: int, spec_dim: int, source: str) -> None:
    if checkpoint_dim != spec_dim:
        raise ConfigError(
            f"{source} predicts {checkpoint_dim}-dim actions (output_features.action) but the "
            f"env's control mode takes {spec_dim}; set env.control_mode to the mode the policy "
            f"was fine-tuned for (one with {checkpoint_dim} action dims)"
        )


def images_uint8(obs: dict[str, object], layout: InputLayout, device: torch.device) -> list:
    """obs["rgb"] uint8 [N, V, H, W, 3] -> one float [N, H, W, 3] in [0, 1] per image key."""
    rgb = obs.get("rgb")
    if rgb is None:
        raise ConfigError(
            "obs has no 'rgb'; the VLA policies need camera images (env.obs_mode=rgb)"
        )
    rgb = torch.as_tensor(rgb).to(device)
    if rgb.dim() != 5 or rgb.shape[-1] != 3:
        raise ConfigError(f"obs['rgb'] must be [N, V, H, W, 3], got {tuple(rgb.shape)}")
    needed = max(layout.camera_index) + 1
    if rgb.shape[1] < needed:
        raise ConfigError(
            f"obs['rgb'] has {rgb.shape[1]} camera(s) but model.obs.cameras uses camera index "
            f"{needed - 1}; build the policy from this env's ObsSpec"
        )
    return [rgb[:, v].float() / 255.0 for v in layout.camera_index]


def select_state(obs: dict[str, object], layout: InputLayout, device: torch.device) -> torch.Tensor:
    if "state" not in obs:
        raise ConfigError("obs has no 'state' entry; every env obs dict must carry 'state'")
    state = torch.as_tensor(obs["state"]).to(device, torch.float32)
    if state.shape[-1] <= max(layout.state_indices, default=-1):
        raise ConfigError(
            f"obs['state'] has {state.shape[-1]} dims but model.obs.state_indices uses "
            f"{max(layout.state_indices)}; build the policy from this env's ObsSpec"
        )
    if layout.state_indices == tuple(range(state.shape[-1])):
        return state
    return state[:, list(layout.state_indices)]


def instructions(obs: dict[str, object], layout: InputLayout, n: int) -> list[str]:
    if layout.instruction is not None:
        return [layout.instruction] * n
    texts = obs.get("instruction")
    if texts is None:
        raise ConfigError(
            "obs has no 'instruction' and model.obs.instruction is null; the VLA needs a task "
            "instruction (set model.obs.instruction='pick up the cube' to fix one)"
        )
    if not isinstance(texts, list | tuple) or len(texts) != n:
        raise ConfigError(f"obs['instruction'] must be a list of {n} strings")
    return list(texts)

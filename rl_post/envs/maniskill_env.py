"""Thin layer over one ManiSkill3 env (1 CPU sub-env or N GPU sub-envs), shared by both backends.

It builds the env, turns raw ManiSkill observations into our obs layout (spec.py) and steps the
simulator without computing observations: inside an action chunk only the observation after the
last executed step is used, so intermediate steps skip rendering and state flattening. Rewards of
every registered task read only `info` (never `obs`), which is what makes this exact; the
chunk-vs-single-step test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rl_post.envs.chunked import ChunkOutcome, select_rows
from rl_post.envs.registry import OBS_MODES
from rl_post.envs.settings import EnvSettings


@dataclass(frozen=True)
class EnvDescription:
    """What a built env reveals about its spaces (state_dim is the task's own, before padding)."""

    state_dim: int
    action_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    cameras: tuple[str, ...]


@dataclass
class StepOutcome:
    reward: torch.Tensor  # float32 [n]
    terminated: torch.Tensor  # bool [n], success or failure per ManiSkill's evaluate()
    success: torch.Tensor  # bool [n]
    info: dict  # ManiSkill's info after the step; get_obs(info) reuses it instead of re-evaluating


def render_backend_for(settings: EnvSettings) -> str:
    if settings.backend == "gpu":
        return settings.sim_device if settings.wants_rgb else "none"
    # SAPIEN's software Vulkan (lavapipe) renders on the CPU; state obs needs no renderer.
    return "cpu" if settings.wants_rgb else "none"


def sim_backend_for(settings: EnvSettings) -> str:
    if settings.backend == "cpu":
        return "physx_cpu"
    return "physx_cuda" if settings.sim_device == "cuda" else settings.sim_device


def make_maniskill_env(task: str, settings: EnvSettings, num_envs: int = 1) -> Any:
    """Build the unwrapped ManiSkill BaseEnv; we track time limits ourselves, so no wrappers."""
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401  (registers the ManiSkill tasks with gymnasium)

    height, width = settings.image_size
    kwargs: dict[str, Any] = dict(
        num_envs=num_envs,
        obs_mode=OBS_MODES[settings.obs_mode],
        control_mode=settings.control_mode,
        reward_mode=settings.reward_mode,
        sim_backend=sim_backend_for(settings),
        render_backend=render_backend_for(settings),
    )
    if settings.wants_rgb:
        kwargs["sensor_configs"] = dict(width=width, height=height)
    env = gym.make(task, **kwargs).unwrapped
    if settings.wants_rgb:
        missing = [c for c in settings.cameras if c not in env._sensors]
        if missing:
            env.close()
            raise ValueError(
                f"task {task} has no camera(s) {missing}; available: {sorted(env._sensors)}. "
                "Set env.cameras accordingly"
            )
    return env


def describe_env(env: Any, settings: EnvSettings) -> EnvDescription:
    space = env.single_action_space
    raw = env.get_obs(env.get_info())
    state = convert_obs(raw, settings)["state"]
    return EnvDescription(
        state_dim=int(state.shape[-1]),
        action_dim=int(space.shape[0]),
        action_low=tuple(float(v) for v in space.low),
        action_high=tuple(float(v) for v in space.high),
        cameras=settings.cameras if settings.wants_rgb else (),
    )


def convert_obs(raw: Any, settings: EnvSettings) -> dict[str, torch.Tensor]:
    """Raw batched ManiSkill obs -> {"state": float32 [n, D], "rgb": uint8 [n, V, H, W, 3]}."""
    from mani_skill.utils import common

    if settings.obs_mode == "state":
        return {"state": raw.to(torch.float32)}
    if settings.obs_mode == "state_rgb":
        state = raw["state"]
    else:
        # "rgb" mode: proprioception plus the task's non-privileged extras (e.g. goal position)
        state = common.flatten_state_dict(
            {"agent": raw["agent"], "extra": raw["extra"]}, use_torch=True, device=raw_device(raw)
        )
    images = [raw["sensor_data"][camera]["rgb"] for camera in settings.cameras]
    return {"state": state.to(torch.float32), "rgb": torch.stack(images, dim=1).to(torch.uint8)}


def raw_device(raw: dict[str, Any]) -> torch.device:
    qpos = raw["agent"]["qpos"]
    return qpos.device


def refresh_contacts(env: Any) -> None:
    """Recompute contacts for the freshly reset scene without moving it.

    ManiSkill's CPU reset places objects but runs no physics step, so contact-based observations
    (e.g. PickCube's is_grasped) still describe the LAST step of the previous episode. One physics
    step detects contacts at the reset poses; restoring the saved state undoes its motion.
    """
    state = env.get_state_dict()
    env.scene.px.step()
    env.set_state_dict(state)


def current_obs(env: Any, settings: EnvSettings, info: dict | None = None) -> dict:
    return convert_obs(env.get_obs(env.get_info() if info is None else info), settings)


def step_without_obs(env: Any, action: torch.Tensor) -> StepOutcome:
    """One control step of ManiSkill's BaseEnv.step minus get_obs (see the module docstring)."""
    action = env._step_action(action)
    env._elapsed_steps += 1
    info = env.get_info()
    reward = env.get_reward(obs=None, action=action, info=info)
    success = info.get("success")
    if success is None:
        success = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    terminated = success.clone()
    if "fail" in info:
        terminated = terminated | info["fail"]
    return StepOutcome(
        reward=reward.to(torch.float32).reshape(-1),
        terminated=terminated.to(torch.bool).reshape(-1),
        success=success.to(torch.bool).reshape(-1),
        info=info,
    )


def build_obs_spec(descriptions: dict[str, EnvDescription], settings: EnvSettings):
    """One ObsSpec for all tasks of a (possibly multi-task) env.

    Tasks must share the action space. State vectors of tasks with fewer dimensions are padded
    with zeros at the end up to the largest state_dim among `descriptions`.
    """
    from rl_post.config import ConfigError
    from rl_post.envs.spec import ObsSpec

    first = next(iter(descriptions.values()))
    for task, desc in descriptions.items():
        if (desc.action_dim, desc.action_low, desc.action_high) != (
            first.action_dim,
            first.action_low,
            first.action_high,
        ):
            raise ConfigError(
                f"tasks {sorted(descriptions)} do not share one action space under "
                f"control_mode={settings.control_mode} ({task}: dim {desc.action_dim}); "
                "mix only tasks with the same robot and controller"
            )
    return ObsSpec(
        state_dim=max(d.state_dim for d in descriptions.values()),
        action_dim=first.action_dim,
        cameras=first.cameras,
        image_size=settings.image_size if settings.wants_rgb else (0, 0),
        action_low=first.action_low,
        action_high=first.action_high,
    )


def pad_state(state: torch.Tensor, state_dim: int) -> torch.Tensor:
    """Zero-pad the last dim of `state` to `state_dim` (multi-task batching, see build_obs_spec)."""
    missing = state_dim - state.shape[-1]
    if missing == 0:
        return state
    return torch.nn.functional.pad(state, (0, missing))


def run_chunk_batched(
    env: Any, settings: EnvSettings, actions: torch.Tensor, budget: torch.Tensor
) -> ChunkOutcome:
    """Run actions[i, :budget[i]] on sub-env i of one (possibly batched) ManiSkill env.

    Used by both backends: a CPU worker calls it with n=1, the GPU backend with n=N. A batched
    simulator steps all sub-envs together, so a sub-env that already stopped keeps being stepped
    physically, but its reward/success no longer count and its observation is frozen at the step
    where it stopped (it is reset or idles at the chunk boundary anyway).
    """
    device = env.device
    n = env.num_envs
    budget = budget.to(device)
    actions = actions.to(device=device, dtype=torch.float32)
    reward = torch.zeros(n, dtype=torch.float32, device=device)
    terminated = torch.zeros(n, dtype=torch.bool, device=device)
    success = torch.zeros(n, dtype=torch.bool, device=device)
    success_any = torch.zeros(n, dtype=torch.bool, device=device)
    steps = torch.zeros(n, dtype=torch.int64, device=device)
    milestones: dict[str, torch.Tensor] = {}
    stopped = budget <= 0
    final_obs: dict[str, torch.Tensor] | None = None
    for t in range(int(budget.max().item()) if n else 0):
        running = ~stopped & (t < budget)
        out = step_without_obs(env, actions[:, t])
        reward += torch.where(running, out.reward, 0.0)
        success = torch.where(running, out.success, success)
        success_any |= running & out.success
        for name, flag in milestone_flags(out.info, n).items():
            reached = milestones.setdefault(name, torch.zeros(n, dtype=torch.bool, device=device))
            reached |= running & flag
        steps += running.to(torch.int64)
        ends_now = running & (t + 1 >= budget)
        if not settings.ignore_terminations:
            terminated |= running & out.terminated
            ends_now |= running & out.terminated
        if bool(ends_now.any()):
            obs_now = current_obs(env, settings, info=out.info)
            final_obs = obs_now if final_obs is None else select_rows(ends_now, obs_now, final_obs)
        stopped |= ends_now
        if bool(stopped.all()):
            break
    if final_obs is None:  # nothing ran (all budgets 0): report the current observation
        final_obs = current_obs(env, settings)
    return ChunkOutcome(final_obs, reward, terminated, success, success_any, steps, milestones)


# Reported on their own (success, success_once / terminated) or not per-env sub-task progress.
NOT_MILESTONES = frozenset({"success", "fail", "elapsed_steps", "reconfigure"})


def milestone_flags(info: dict, n: int) -> dict[str, torch.Tensor]:
    """The task's per-env boolean info flags ([n] bool tensors), e.g. PickCube's is_grasped,
    is_obj_placed, is_robot_static: where an episode got to before it failed."""
    return {
        name: value.reshape(-1)
        for name, value in info.items()
        if name not in NOT_MILESTONES
        and isinstance(value, torch.Tensor)
        and value.dtype == torch.bool
        and value.numel() == n
    }

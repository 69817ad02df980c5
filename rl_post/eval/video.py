"""mp4 videos of evaluation episodes.

The vector env's sub-envs live in other processes and do not render, so videos re-run the first
seeds of each task in one rendering env in this process, with the same chunk semantics (k
actions per decision, stop at termination or the time limit). Deterministic mode reproduces the
evaluated episodes; stochastic mode shows a sample from the same policy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl_post.envs.settings import EnvSettings, parse_env_settings


def _make_render_env(task: str, settings: EnvSettings) -> Any:
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401

    from rl_post.envs.maniskill_env import sim_backend_for
    from rl_post.envs.registry import OBS_MODES

    kwargs: dict[str, Any] = dict(
        obs_mode=OBS_MODES[settings.obs_mode],
        control_mode=settings.control_mode,
        reward_mode=settings.reward_mode,
        sim_backend=sim_backend_for(settings),
        render_mode="rgb_array",
    )
    if settings.backend == "cpu":
        kwargs["render_backend"] = "cpu"
    if settings.wants_rgb:
        height, width = settings.image_size
        kwargs["sensor_configs"] = dict(width=width, height=height)
    return gym.make(task, **kwargs).unwrapped


def _frame(env: Any) -> np.ndarray:
    image = env.render()
    image = image.cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return image.reshape(-1, *image.shape[-3:])[0].astype(np.uint8)


@torch.no_grad()
def record_episode(
    policy: Any, env: Any, settings: EnvSettings, task: str, seed: int, mode: str, generator: Any
) -> tuple[list[np.ndarray], bool]:
    from rl_post.envs.maniskill_env import convert_obs
    from rl_post.envs.registry import instruction_for

    raw, _ = env.reset(seed=seed)
    frames = [_frame(env)]
    instruction = instruction_for(task)
    steps, success_once = 0, False
    k = int(policy.execute_steps)
    while steps < settings.max_episode_steps:
        obs: dict[str, object] = dict(convert_obs(raw, settings))
        pad = policy.spec.state_dim - obs["state"].shape[-1]  # type: ignore[union-attr]
        if pad > 0:  # multi-task envs pad every state to the widest task
            obs["state"] = torch.nn.functional.pad(obs["state"], (0, pad))  # type: ignore[arg-type]
        obs["instruction"] = [instruction]
        chunk = policy.act(obs, mode=mode, generator=generator).actions[0]
        terminated = False
        for action in chunk[:k]:
            raw, _, term, _, info = env.step(action.unsqueeze(0))
            frames.append(_frame(env))
            steps += 1
            success_once |= bool(info.get("success", torch.zeros(1)).any())
            terminated = bool(torch.as_tensor(term).any()) and not settings.ignore_terminations
            if terminated or steps >= settings.max_episode_steps:
                break
        if terminated:
            break
    return frames, success_once


def record_videos(
    policy: Any,
    env_cfg: Any,
    seeds: list[int],
    mode: str,
    folder: Path,
    fps: int = 20,
    generator_seed: int = 0,
) -> list[dict[str, Any]]:
    import imageio.v2 as imageio

    base = parse_env_settings(env_cfg, check_device=False)
    folder.mkdir(parents=True, exist_ok=True)
    # Seeded in both modes: a flow policy's deterministic (ODE) mode still draws its initial noise.
    generator = torch.Generator().manual_seed(generator_seed)
    written = []
    for task in dict.fromkeys(base.tasks):
        settings = replace(base, tasks=(task,), num_envs=1)
        env = _make_render_env(task, settings)
        try:
            for seed in seeds:
                frames, success = record_episode(policy, env, settings, task, seed, mode, generator)
                path = folder / f"{task}_seed{seed}_{'success' if success else 'fail'}.mp4"
                imageio.mimsave(path, frames, fps=fps)
                written.append(
                    {"task": task, "seed": seed, "success_once": success, "path": str(path)}
                )
        finally:
            env.close()
    return written

"""Observations labelled with the simulator's true success, for training success classifiers.

Two sources, both labelled by the env itself (ManiSkill's evaluate() "success" after each step):
  - demos: every episode of a demo file is replayed from its seed with its recorded actions and
    termination ignored, so the frames after the first success (the held cube at the goal) are
    positives and every earlier frame a negative. Replaying (instead of trusting the file) gives
    per-step labels and observations in whatever obs mode the env config asks for (e.g. rgb from a
    state-only demo file).
  - rollouts: random actions or a policy checkpoint in a vector env; the observation at the end of
    each decision (before auto-reset) with the success at that moment. These are the states RL
    visits, mostly negatives.
Each example carries its episode id, so held-out splits never share an episode with training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from rl_post.config import ConfigError
from rl_post.data.demos import iter_episodes, read_meta


@dataclass
class LabelledSet:
    state: np.ndarray  # float32 [M, D]
    label: np.ndarray  # bool [M]
    episode: np.ndarray  # int64 [M], unique across sources
    rgb: np.ndarray | None = None  # uint8 [M, V, H, W, 3]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> stats

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def subset(self, rows: np.ndarray) -> LabelledSet:
        return LabelledSet(
            self.state[rows],
            self.label[rows],
            self.episode[rows],
            None if self.rgb is None else self.rgb[rows],
            self.counts,
        )


def concat(sets: list[LabelledSet]) -> LabelledSet:
    """Join sets, renumbering episodes so ids stay unique."""
    sets = [s for s in sets if len(s)]
    if not sets:
        raise ConfigError(
            "no labelled examples: enable reward_train.demos (with a demo file) and/or "
            "reward_train.rollouts.decisions > 0"
        )
    episodes, offset = [], 0
    for s in sets:
        episodes.append(s.episode + offset)
        offset += int(s.episode.max()) + 1
    has_rgb = all(s.rgb is not None for s in sets)
    counts: dict[str, dict[str, int]] = {}
    for s in sets:
        counts.update(s.counts)
    return LabelledSet(
        np.concatenate([s.state for s in sets]),
        np.concatenate([s.label for s in sets]),
        np.concatenate(episodes),
        np.concatenate([s.rgb for s in sets]) if has_rgb else None,  # type: ignore[misc]
        counts,
    )


def _stats(label: np.ndarray, episodes: int) -> dict[str, int]:
    return {"examples": int(len(label)), "positives": int(label.sum()), "episodes": episodes}


def _single_task(env_cfg: DictConfig) -> str:
    tasks = list(env_cfg.tasks)
    if len(tasks) != 1:
        raise ConfigError(
            f"reward training labels one task at a time but env.tasks={tasks}; set env.tasks=[<task>]"
        )
    return str(tasks[0])


def _env_copy(env_cfg: DictConfig, **changes: Any) -> DictConfig:
    copy = OmegaConf.create(OmegaConf.to_container(env_cfg, resolve=True))
    with open_dict(copy):
        for k, v in changes.items():
            copy[k] = v
    return copy  # type: ignore[return-value]


def _tensor_obs(obs: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in obs.items() if isinstance(v, torch.Tensor)}


class _Recorder:
    def __init__(self) -> None:
        self.states: list[np.ndarray] = []
        self.rgbs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.episodes: list[np.ndarray] = []

    def add(self, obs: dict[str, torch.Tensor], success: torch.Tensor, episode: np.ndarray) -> None:
        self.states.append(obs["state"].cpu().numpy().astype(np.float32))
        if "rgb" in obs:
            self.rgbs.append(obs["rgb"].cpu().numpy().astype(np.uint8))
        self.labels.append(success.cpu().numpy().astype(bool))
        self.episodes.append(np.asarray(episode, dtype=np.int64))

    def result(self, source: str, num_episodes: int) -> LabelledSet:
        if not self.labels:
            return LabelledSet(
                np.zeros((0, 0), np.float32), np.zeros(0, bool), np.zeros(0, np.int64)
            )
        label = np.concatenate(self.labels)
        return LabelledSet(
            np.concatenate(self.states),
            label,
            np.concatenate(self.episodes),
            np.concatenate(self.rgbs) if self.rgbs else None,
            {source: _stats(label, num_episodes)},
        )


def label_demos(env_cfg: DictConfig, path: str, max_episodes: int | None) -> LabelledSet:
    """Replay demo episodes (seed + actions) and label every step with the env's success."""
    from rl_post.envs.factory import make_vector_env

    task = _single_task(env_cfg)
    meta = read_meta(path)
    if meta.control_mode != str(env_cfg.control_mode):
        raise ConfigError(
            f"demo file {path} holds actions in control_mode={meta.control_mode} but "
            f"env.control_mode={env_cfg.control_mode}; replay needs the same control mode"
        )
    episodes = [e for e in iter_episodes(path, tasks=[task], load_rgb=False)]
    if max_episodes is not None:
        episodes = episodes[:max_episodes]
    if not episodes:
        raise ConfigError(f"demo file {path} holds no episode of {task}")
    longest = max(e.length for e in episodes)
    env = make_vector_env(
        _env_copy(env_cfg, ignore_terminations=True, max_episode_steps=longest + 1), num_envs=1
    )
    recorder = _Recorder()
    try:
        for number, ep in enumerate(episodes):
            env.reset(seeds=[ep.seed])
            for t in range(ep.length):
                action = torch.from_numpy(ep.actions[t]).view(1, 1, -1)
                result = env.step_chunk(action, 1)
                recorder.add(_tensor_obs(result.final_obs), result.success, np.array([number]))
    finally:
        env.close()
    return recorder.result("demos", len(episodes))


def label_rollouts(
    env_cfg: DictConfig,
    num_envs: int,
    decisions: int,
    execute_steps: int,
    policy_checkpoint: str | None,
    seed: int,
) -> LabelledSet:
    """End-of-decision observations of random (or policy) rollouts with their success."""
    from rl_post.envs.factory import make_vector_env

    _single_task(env_cfg)
    env = make_vector_env(_env_copy(env_cfg, num_envs=num_envs, seed=seed))
    policy = None
    if policy_checkpoint:
        from rl_post.models.checkpoint import load_policy

        policy = load_policy(policy_checkpoint, spec=env.spec)
    generator = torch.Generator().manual_seed(seed)
    low = torch.tensor(env.spec.action_low, dtype=torch.float32)
    high = torch.tensor(env.spec.action_high, dtype=torch.float32)
    episode = np.arange(num_envs, dtype=np.int64)
    next_episode = num_envs
    recorder = _Recorder()
    try:
        obs = env.reset()
        for _ in range(decisions):
            if policy is None:
                u = torch.rand((num_envs, execute_steps, len(low)), generator=generator)
                actions = low + u * (high - low)
                k = execute_steps
            else:
                actions = policy.act(obs, "stochastic", generator=generator).actions
                k = int(policy.execute_steps)
            result = env.step_chunk(actions, k)
            recorder.add(_tensor_obs(result.final_obs), result.success, episode.copy())
            for i in np.flatnonzero(result.done.cpu().numpy()):
                episode[i], next_episode = next_episode, next_episode + 1
            obs = result.obs
    finally:
        env.close()
    return recorder.result("rollouts", next_episode)

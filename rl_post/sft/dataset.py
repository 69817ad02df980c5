"""Behaviour-cloning samples from demo episodes: one sample per time step, target = next H actions.

At the end of an episode the window runs past the last action; it is padded by repeating the
last action and the mask marks the padded entries, so the loss ignores them while the policy
still sees a full [H, A] chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rl_post.config import ConfigError
from rl_post.data.demos import DemoEpisode


def chunk_targets(actions: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """actions [L, A] -> chunks [L, H, A] with chunks[t, j] = actions[min(t + j, L - 1)] and
    mask [L, H] = (t + j < L)."""
    length = actions.shape[0]
    if length < 1 or horizon < 1:
        raise ValueError(f"need at least one action and horizon >= 1, got L={length}, H={horizon}")
    index = np.arange(length)[:, None] + np.arange(horizon)[None, :]
    mask = index < length
    return actions[np.minimum(index, length - 1)], mask


@dataclass
class BCData:
    """Flat BC samples. Tensors on CPU; `instruction_ids` index into `instructions`."""

    state: torch.Tensor  # float32 [M, D]
    chunks: torch.Tensor  # float32 [M, H, A]
    mask: torch.Tensor  # bool [M, H]
    instruction_ids: torch.Tensor  # int64 [M]
    instructions: list[str]
    rgb: torch.Tensor | None = None  # uint8 [M, V, H, W, 3]

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def batch(self, index: torch.Tensor) -> tuple[dict[str, object], torch.Tensor, torch.Tensor]:
        """(obs dict in the env layout, action chunks [B, H, A], mask [B, H]) of rows `index`."""
        obs: dict[str, object] = {
            "state": self.state[index],
            "instruction": [self.instructions[int(i)] for i in self.instruction_ids[index]],
        }
        if self.rgb is not None:
            obs["rgb"] = self.rgb[index]
        return obs, self.chunks[index], self.mask[index]


def build_bc_data(
    episodes: list[DemoEpisode], horizon: int, state_dim: int, use_rgb: bool
) -> BCData:
    """Stack episodes into BC samples; states narrower than `state_dim` are zero-padded (the env
    layer pads every task's state to the widest task's dimension in multi-task runs)."""
    if not episodes:
        raise ConfigError("no demo episodes to build BC data from")
    instructions = sorted({ep.instruction for ep in episodes})
    ids = {text: i for i, text in enumerate(instructions)}
    states, chunks, masks, inst, images = [], [], [], [], []
    for ep in episodes:
        if ep.state.shape[1] > state_dim:
            raise ConfigError(
                f"demo states of {ep.task} have {ep.state.shape[1]} dims but the env gives "
                f"{state_dim}; the demos were collected with another env config (obs_mode?)"
            )
        pad = np.zeros((ep.length, state_dim - ep.state.shape[1]), dtype=np.float32)
        states.append(np.concatenate([ep.state, pad], axis=1))
        c, m = chunk_targets(ep.actions, horizon)
        chunks.append(c)
        masks.append(m)
        inst.append(np.full(ep.length, ids[ep.instruction], dtype=np.int64))
        if use_rgb:
            if ep.rgb is None:
                raise ConfigError(f"demo of {ep.task} seed {ep.seed} has no rgb observations")
            images.append(ep.rgb)
    return BCData(
        state=torch.from_numpy(np.concatenate(states)).float(),
        chunks=torch.from_numpy(np.concatenate(chunks)).float(),
        mask=torch.from_numpy(np.concatenate(masks)),
        instruction_ids=torch.from_numpy(np.concatenate(inst)),
        instructions=instructions,
        rgb=torch.from_numpy(np.concatenate(images)) if use_rgb else None,
    )


def split_episodes(
    episodes: list[DemoEpisode], num_train: int | None, num_val: int
) -> tuple[list[DemoEpisode], list[DemoEpisode]]:
    """Per task: the first `num_train` episodes train (all but the last `num_val` when None) and
    the `num_val` episodes after them validate, so few-shot runs train on exactly n demos."""
    tasks = list(dict.fromkeys(ep.task for ep in episodes))
    train: list[DemoEpisode] = []
    val: list[DemoEpisode] = []
    for task in tasks:
        mine = [ep for ep in episodes if ep.task == task]
        n_train = len(mine) - num_val if num_train is None else num_train
        if n_train < 1 or n_train + num_val > len(mine):
            raise ConfigError(
                f"task {task} has {len(mine)} demos but sft.num_demos={num_train} training + "
                f"sft.val_episodes={num_val} validation episodes were asked for; collect more "
                f"(rl-post collect-demos collect.num_demos={max(n_train, 1) + num_val}) or lower them"
            )
        train.extend(mine[:n_train])
        val.extend(mine[n_train : n_train + num_val])
    return train, val

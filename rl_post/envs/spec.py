"""Shapes and results shared by every vector-env backend.

Observations are a dict:
  - "state": float32 [N, D]                 (always present; proprioception + task state)
  - "rgb":   uint8  [N, V, H, W, 3]          (only when obs_mode includes rgb; V cameras in
                                             ObsSpec.cameras order, so obs["rgb"][:, v] is the
                                             [N, H, W, 3] image of camera v)
  - "instruction": list[str] of length N     (language instruction of each sub-env's task)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

Obs = dict[str, object]


@dataclass(frozen=True)
class ObsSpec:
    state_dim: int
    action_dim: int
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (0, 0)  # (height, width); (0, 0) when no rgb
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()

    @property
    def has_rgb(self) -> bool:
        return len(self.cameras) > 0


@dataclass
class EpisodeStats:
    env_index: int
    task: str
    seed: int
    success_once: bool
    success_at_end: bool
    episode_return: float
    length: int
    # the task's boolean info flags reached at any step (see ChunkOutcome.milestones)
    milestones: dict[str, bool] = field(default_factory=dict)


@dataclass
class ChunkStepResult:
    """What one `step_chunk` call returns, batched over N sub-envs.

    obs:         observation to act on next (after auto-reset for finished sub-envs)
    final_obs:   observation at the end of this chunk BEFORE any auto-reset; equals `obs` rows
                 where the sub-env did not finish. Used to bootstrap V(final_obs) on truncation.
    reward:      float32 [N], sum of step rewards inside the chunk
    terminated:  bool [N], episode ended by success/failure inside this chunk
    truncated:   bool [N], episode ended by the time limit inside this chunk (and not terminated)
    success:     bool [N], task success at the last executed step of the chunk
    active:      bool [N], False where the sub-env was idle during this chunk (synchronized reset
                 mode: finished sub-envs wait for the rest); such decisions carry no learning signal
    steps:       int64 [N], low-level steps executed inside the chunk
    episodes:    statistics of every episode that finished inside this chunk
    """

    obs: Obs
    final_obs: Obs
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    success: torch.Tensor
    active: torch.Tensor
    steps: torch.Tensor
    episodes: list[EpisodeStats] = field(default_factory=list)

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated

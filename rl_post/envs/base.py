"""The vector-env interface every backend (CPU multi-process, GPU batched) implements."""

from __future__ import annotations

from typing import Protocol

import torch

from rl_post.envs.spec import ChunkStepResult, Obs, ObsSpec


class VectorEnv(Protocol):
    num_envs: int
    spec: ObsSpec
    device: torch.device

    def reset(self, seeds: list[int] | None = None) -> Obs:
        """Reset every sub-env. With `seeds` (length N) sub-env i starts from seed[i]; equal seeds
        give identical initial states. Without, seeds come from the env's seed cursor."""
        ...

    def step_chunk(self, actions: torch.Tensor, k: int) -> ChunkStepResult:
        """Execute up to k of the H actions in `actions` [N, H, A] (env units) per sub-env."""
        ...

    def seed_cursor(self) -> int:
        """Index of the next episode seed to hand out (saved in checkpoints for resume)."""
        ...

    def set_seed_cursor(self, cursor: int) -> None: ...

    def close(self) -> None: ...

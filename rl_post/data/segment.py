"""Trajectory segments: what rollout workers stream to the learner.

Every tensor field is time-major [T, N, ...]: T chunk-steps (decisions) of N sub-envs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Segment:
    obs: dict[str, torch.Tensor]  # tensor obs entries, each [T, N, ...]
    instructions: list[str]  # [N]; a sub-env keeps its task (and instruction) for the whole run
    actions: torch.Tensor  # [T, N, H, A]
    stored: dict[str, torch.Tensor]  # policy data for exact log-prob recomputation, [T, N, ...]
    logprob: torch.Tensor  # [T, N, H, A] behaviour log-prob
    value: torch.Tensor  # [T, N] (zeros when the policy has no value head)
    reward: torch.Tensor  # [T, N]
    terminated: torch.Tensor  # [T, N] bool
    truncated: torch.Tensor  # [T, N] bool
    active: torch.Tensor  # [T, N] bool, False for idle decisions (see ChunkStepResult.active)
    bootstrap_value: torch.Tensor  # [T, N] V(final_obs) where truncated (or, with
    # algo.bootstrap_terminations, terminated), else 0
    last_value: torch.Tensor  # [N] V(obs after the last decision), to bootstrap the segment end
    version: torch.Tensor  # [T, N] int64, weight version that produced each decision
    group_id: torch.Tensor  # [T, N] int64, episode group (same initial state) of each decision
    success: torch.Tensor  # [T, N] bool, success at the end of each decision
    steps: torch.Tensor  # [T, N] int64, low-level env steps executed by each decision
    episodes: list = field(default_factory=list)  # EpisodeStats of episodes finished in segment
    # Observation at the END of each decision (before any auto-reset), [T, N, ...] per tensor key;
    # recorded only when a reward model needs it (RolloutWorker(store_end_obs=True)), else empty.
    end_obs: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(self.reward.shape[0])

    @property
    def num_envs(self) -> int:
        return int(self.reward.shape[1])

    def to(self, device: torch.device | str) -> Segment:
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device)
            elif isinstance(v, dict):
                v = {k: t.to(device) for k, t in v.items()}
            moved[f.name] = v
        return Segment(**moved)

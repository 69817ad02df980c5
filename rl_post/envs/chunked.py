"""Backend-independent chunk semantics: time limits, episode statistics, seeds and auto-resets.

A backend (CPU processes, GPU batch) only has to (a) reset given sub-envs to given seeds and
(b) run up to `budget[i]` actions of a chunk on sub-env i, stopping a sub-env early when it
terminates. Everything else that defines the ChunkStepResult lives here, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from rl_post.envs.seeding import SeedSchedule
from rl_post.envs.settings import EnvSettings
from rl_post.envs.spec import ChunkStepResult, EpisodeStats, Obs, ObsSpec

TensorObs = dict[str, torch.Tensor]


@dataclass
class ChunkOutcome:
    """What a backend reports after running one chunk. Rows with budget 0 are ignored.

    obs:         observation after each sub-env's last executed step
    reward:      float32 [N], sum of executed step rewards
    terminated:  bool [N], stopped by success/failure (always False with ignore_terminations)
    success:     bool [N], success at the last executed step
    success_any: bool [N], success at any executed step
    steps:       int64 [N], executed steps
    milestones:  name -> bool [N]: each boolean flag of the task's info (e.g. PickCube's is_grasped,
                 is_obj_placed) true at any executed step; success and fail are reported above
    """

    obs: TensorObs
    reward: torch.Tensor
    terminated: torch.Tensor
    success: torch.Tensor
    success_any: torch.Tensor
    steps: torch.Tensor
    milestones: dict[str, torch.Tensor] = field(default_factory=dict)


def select_rows(mask: torch.Tensor, if_true: TensorObs, if_false: TensorObs) -> TensorObs:
    """Row-wise choice between two batched obs dicts (mask [N] bool)."""
    out = {}
    for key, value in if_true.items():
        row_mask = mask.view(-1, *([1] * (value.dim() - 1))).to(value.device)
        out[key] = torch.where(row_mask, value, if_false[key])
    return out


def replace_rows(obs: TensorObs, env_ids: torch.Tensor, rows: TensorObs) -> TensorObs:
    out = {key: value.clone() for key, value in obs.items()}
    for key, value in rows.items():
        out[key][env_ids.to(value.device)] = value
    return out


class ChunkedVectorEnv(ABC):
    """Implements the VectorEnv protocol (base.py) on top of `_reset_envs` and `_run_chunk`."""

    def __init__(self, settings: EnvSettings, spec: ObsSpec, device: torch.device) -> None:
        self.settings = settings
        self.num_envs = settings.num_envs
        self.spec = spec
        self.device = device
        self.instructions = settings.instructions()
        self.tasks = [settings.task_of(i) for i in range(self.num_envs)]
        self._seeds = SeedSchedule(
            base=settings.seed + settings.seed_offset,
            num_envs=settings.num_envs,
            group_size=settings.group_size,
        )
        n = self.num_envs
        self._obs: TensorObs | None = None
        self._length = torch.zeros(n, dtype=torch.int64)
        self._return = torch.zeros(n, dtype=torch.float32)
        self._success_once = torch.zeros(n, dtype=torch.bool)
        self._last_success = torch.zeros(n, dtype=torch.bool)
        # flag name -> bool [N]: reached in the current episode (ChunkOutcome.milestones)
        self._milestones: dict[str, torch.Tensor] = {}
        self._episode_seed = torch.zeros(n, dtype=torch.int64)
        self._waiting = torch.zeros(n, dtype=torch.bool)  # synchronized mode: finished, idle

    # -- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    def _reset_envs(self, env_ids: list[int], seeds: list[int]) -> TensorObs:
        """Reset sub-envs `env_ids` to episode seeds `seeds`; return their obs rows (in order)."""

    @abstractmethod
    def _run_chunk(self, actions: torch.Tensor, budget: torch.Tensor) -> ChunkOutcome:
        """Run actions[i, :budget[i]] on sub-env i (stop early on termination)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- VectorEnv API -------------------------------------------------------------------------
    def seed_cursor(self) -> int:
        return self._seeds.cursor

    def set_seed_cursor(self, cursor: int) -> None:
        self._seeds.cursor = int(cursor)

    def reset(self, seeds: list[int] | None = None) -> Obs:
        if seeds is None:
            seeds = self._seeds.next_group_seeds()
        seeds = [int(s) for s in seeds]
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset(seeds=...) needs {self.num_envs} seeds, got {len(seeds)}")
        all_ids = list(range(self.num_envs))
        self._obs = self._reset_envs(all_ids, seeds)
        self._start_episodes(torch.arange(self.num_envs), seeds)
        self._waiting.zero_()
        return self._with_instructions(self._obs)

    def step_chunk(self, actions: torch.Tensor, k: int) -> ChunkStepResult:
        if self._obs is None:
            raise RuntimeError("call reset() before step_chunk()")
        actions = self._check_actions(actions, k)
        max_steps = self.settings.max_episode_steps
        active = ~self._waiting
        budget = torch.clamp(max_steps - self._length, min=0).clamp(max=k)
        budget = torch.where(active, budget, torch.zeros_like(budget))
        outcome = self._run_chunk(actions, budget)

        steps = torch.where(active, outcome.steps.cpu().to(torch.int64), 0)
        reward = torch.where(active, outcome.reward.cpu().to(torch.float32), 0.0)
        terminated = outcome.terminated.cpu() & active
        success = torch.where(active, outcome.success.cpu(), self._last_success)
        self._length += steps
        self._return += reward
        self._success_once |= outcome.success_any.cpu() & active
        for name, reached in outcome.milestones.items():
            so_far = self._milestones.setdefault(name, torch.zeros(self.num_envs, dtype=torch.bool))
            so_far |= reached.cpu() & active
        self._last_success = success.clone()
        truncated = (self._length >= max_steps) & ~terminated & active
        done = terminated | truncated
        final_obs = select_rows(active.to(self.device), outcome.obs, self._obs)
        episodes = [self._episode_stats(i) for i in torch.nonzero(done).flatten().tolist()]

        obs = self._auto_reset(done, final_obs)
        self._obs = obs
        return ChunkStepResult(
            obs=self._with_instructions(obs),
            final_obs=self._with_instructions(final_obs),
            reward=reward.to(self.device),
            terminated=terminated.to(self.device),
            truncated=truncated.to(self.device),
            success=success.to(self.device),
            active=active.to(self.device),
            steps=steps.to(self.device),
            episodes=episodes,
        )

    # -- internals -----------------------------------------------------------------------------
    def _check_actions(self, actions: torch.Tensor, k: int) -> torch.Tensor:
        actions = torch.as_tensor(actions, dtype=torch.float32)
        if actions.dim() != 3 or actions.shape[0] != self.num_envs:
            raise ValueError(
                f"actions must be [num_envs={self.num_envs}, H, action_dim], got "
                f"{tuple(actions.shape)}"
            )
        if actions.shape[2] != self.spec.action_dim:
            raise ValueError(f"action_dim is {self.spec.action_dim}, got {actions.shape[2]}")
        if not 1 <= k <= actions.shape[1]:
            raise ValueError(f"k must be in [1, H={actions.shape[1]}], got {k}")
        return actions

    def _auto_reset(self, done: torch.Tensor, final_obs: TensorObs) -> TensorObs:
        if self.settings.reset_mode == "synchronized":
            self._waiting |= done
            if not bool(self._waiting.all()):
                return final_obs
            env_ids = list(range(self.num_envs))
            seeds = self._seeds.next_group_seeds()
            self._waiting.zero_()
        else:
            env_ids = torch.nonzero(done).flatten().tolist()
            if not env_ids:
                return final_obs
            seeds = self._seeds.next_single_seeds(len(env_ids))
        rows = self._reset_envs(env_ids, seeds)
        self._start_episodes(torch.tensor(env_ids, dtype=torch.int64), seeds)
        return replace_rows(final_obs, torch.tensor(env_ids, dtype=torch.int64), rows)

    def _start_episodes(self, env_ids: torch.Tensor, seeds: list[int]) -> None:
        self._length[env_ids] = 0
        self._return[env_ids] = 0.0
        self._success_once[env_ids] = False
        self._last_success[env_ids] = False
        for reached in self._milestones.values():
            reached[env_ids] = False
        self._episode_seed[env_ids] = torch.tensor(seeds, dtype=torch.int64)

    def _episode_stats(self, i: int) -> EpisodeStats:
        return EpisodeStats(
            env_index=i,
            task=self.tasks[i],
            seed=int(self._episode_seed[i]),
            success_once=bool(self._success_once[i]),
            success_at_end=bool(self._last_success[i]),
            episode_return=float(self._return[i]),
            length=int(self._length[i]),
            milestones={name: bool(reached[i]) for name, reached in self._milestones.items()},
        )

    def _with_instructions(self, obs: TensorObs) -> Obs:
        out: Obs = dict(obs)
        out["instruction"] = list(self.instructions)
        return out

    def __enter__(self) -> ChunkedVectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

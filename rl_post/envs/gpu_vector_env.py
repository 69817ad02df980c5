"""GPU backend: one physx_cuda ManiSkill env holding all N sub-envs; tensors stay on the GPU.

Chunk stepping and episode bookkeeping are shared with the CPU backend (chunked.py,
maniskill_env.run_chunk_batched); only resets differ. ManiSkill's GPU tasks sample initial
states from the global torch RNG (seeded once per reset call), so per-sub-env seeds cannot pin
per-sub-env states. Instead each reset call is seeded with its first episode seed, and sub-envs
given equal seeds (GRPO group members) are made identical by copying the state of the first
sub-env holding that seed (get_state_dict/set_state_dict) and recomputing observations.
Consequences: the same seed list and reset sequence reproduce the same states, but a seed does
not give the same state as on the CPU backend; and state that a task keeps outside the physics
scene (per-env geometry built at reconfiguration, e.g. PegInsertionSide's peg sizes) is not
copied, so group members of such tasks may differ in it.
"""

from __future__ import annotations

from typing import Any

import torch

from rl_post.envs.chunked import ChunkedVectorEnv, ChunkOutcome, TensorObs
from rl_post.envs.maniskill_env import (
    build_obs_spec,
    current_obs,
    describe_env,
    make_maniskill_env,
    run_chunk_batched,
)
from rl_post.envs.settings import EnvSettings


def copy_plan(env_ids: list[int], seeds: list[int]) -> tuple[list[int], list[int]]:
    """(sources, targets): each sub-env whose seed appeared earlier copies that first holder."""
    first_holder: dict[int, int] = {}
    sources: list[int] = []
    targets: list[int] = []
    for env_id, seed in zip(env_ids, seeds, strict=True):
        if seed in first_holder:
            sources.append(first_holder[seed])
            targets.append(env_id)
        else:
            first_holder[seed] = env_id
    return sources, targets


class GpuVectorEnv(ChunkedVectorEnv):
    def __init__(self, settings: EnvSettings) -> None:
        task = settings.tasks[0]
        self._env: Any = make_maniskill_env(task, settings, num_envs=settings.num_envs)
        try:
            spec = build_obs_spec({task: describe_env(self._env, settings)}, settings)
        except BaseException:
            self._env.close()
            raise
        super().__init__(settings, spec, self._env.device)
        self._closed = False

    def _reset_envs(self, env_ids: list[int], seeds: list[int]) -> TensorObs:
        env = self._env
        ids = torch.tensor(env_ids, dtype=torch.int64, device=self.device)
        env.reset(seed=int(seeds[0]), options={"env_idx": ids})
        sources, targets = copy_plan(env_ids, seeds)
        if targets:
            self._copy_states(sources, targets)
        obs = current_obs(env, self.settings)
        return {key: value[ids] for key, value in obs.items()}

    def _copy_states(self, sources: list[int], targets: list[int]) -> None:
        env = self._env
        src = torch.tensor(sources, dtype=torch.int64, device=self.device)
        dst = torch.tensor(targets, dtype=torch.int64, device=self.device)
        state = env.get_state_dict()
        rows = {
            group: {name: value[src] for name, value in state[group].items()}
            for group in ("actors", "articulations")
            if group in state
        }
        env.set_state_dict(rows, env_idx=dst)
        # Controllers cache targets from the robot's qpos; recompute them from the copied qpos,
        # as ManiSkill's own reset does after initialising an episode.
        env.agent.controller.reset()

    def _run_chunk(self, actions: torch.Tensor, budget: torch.Tensor) -> ChunkOutcome:
        return run_chunk_batched(self._env, self.settings, actions, budget)

    def close(self) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            self._env.close()

"""One motion-planned demonstration in the training obs/control mode.

ManiSkill's planners (mplib) drive the robot in pd_joint_pos. We record their joint targets and
convert them to the training control mode with ManiSkill's own converter
(`mani_skill.trajectory.utils.actions.conversion.from_pd_joint_pos`): it replays the joint
targets in a pd_joint_pos copy of the env and, in the target env, issues the control-mode action
that tracks that copy, with closed-loop correction steps. The target env is the one we record:
its observations (converted exactly like the training envs do) and the actions it executed.
A demo counts only when the converted replay itself succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rl_post.config import ConfigError
from rl_post.data.demos import DemoEpisode
from rl_post.envs.maniskill_env import (
    convert_obs,
    make_maniskill_env,
    refresh_contacts,
    sim_backend_for,
)
from rl_post.envs.registry import instruction_for
from rl_post.envs.settings import EnvSettings

# Task -> solver in mani_skill.examples.motionplanning.panda.solutions
PLANNERS: dict[str, str] = {
    "PickCube-v1": "solvePickCube",
    "PushCube-v1": "solvePushCube",
    "PullCube-v1": "solvePullCube",
    "StackCube-v1": "solveStackCube",
    "LiftPegUpright-v1": "solveLiftPegUpright",
    "PegInsertionSide-v1": "solvePegInsertionSide",
    "PlaceSphere-v1": "solvePlaceSphere",
    "PlugCharger-v1": "solvePlugCharger",
}
PLANNER_CONTROL_MODE = "pd_joint_pos"


def check_planner_task(task: str) -> str:
    if task not in PLANNERS:
        raise ConfigError(
            f"no motion planner for task '{task}', so no demos can be collected for it; tasks "
            f"with planners: {', '.join(sorted(PLANNERS))}"
        )
    return task


@dataclass
class DemoResult:
    task: str
    seed: int
    episode: DemoEpisode | None  # None when planning or the converted replay failed
    reason: str = ""  # why it failed
    planner_steps: int = 0


class _Recorder:
    """Wraps the target env: records the obs each action was taken from, and the action."""

    def __init__(self, env: Any, settings: EnvSettings):
        self.env = env
        self.unwrapped = env
        self.settings = settings
        self.states: list[np.ndarray] = []
        self.images: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []

    def _keep(self, raw_obs: Any) -> None:
        obs = convert_obs(raw_obs, self.settings)
        self.states.append(obs["state"][0].cpu().numpy())
        if "rgb" in obs:
            self.images.append(obs["rgb"][0].cpu().numpy())

    def reset(self, seed: int) -> None:
        self.states, self.images, self.actions = [], [], []
        self.env.reset(seed=seed)
        refresh_contacts(self.env)  # the env is reused: drop the previous demo's contacts
        self._keep(self.env.get_obs())

    def step(self, action: Any) -> tuple:
        self.actions.append(
            np.asarray(action.cpu() if hasattr(action, "cpu") else action).reshape(-1)
        )
        raw, reward, terminated, truncated, info = self.env.step(action)
        self._keep(raw)
        return raw, reward, terminated, truncated, info


class PlannerDemoMaker:
    """Owns the three envs one demo needs (planner, joint-pos replay, recorded target)."""

    def __init__(self, task: str, settings: EnvSettings, max_episode_steps: int):
        import gymnasium as gym
        import mani_skill.envs  # noqa: F401
        from mani_skill.examples.motionplanning.panda import solutions

        self.task = check_planner_task(task)
        self.settings = replace(settings, tasks=(task,), num_envs=1)
        self.instruction = instruction_for(task)
        self.max_episode_steps = max_episode_steps
        self._solve = getattr(solutions, PLANNERS[task])
        plain = dict(
            obs_mode="none",
            control_mode=PLANNER_CONTROL_MODE,
            sim_backend=sim_backend_for(self.settings),
            render_backend="none",
        )
        # The planner env keeps gymnasium's wrappers: the solutions call env.reset/step on it.
        self._planner_env = gym.make(task, max_episode_steps=max_episode_steps, **plain)
        self._replay_env = gym.make(task, **plain).unwrapped
        self._target = _Recorder(make_maniskill_env(task, self.settings), self.settings)
        self._planned_actions: list[np.ndarray] = []
        original_step = self._planner_env.step

        def recording_step(action: Any) -> tuple:
            self._planned_actions.append(np.asarray(action, dtype=np.float32).reshape(-1))
            return original_step(action)

        self._planner_env.step = recording_step  # the solvers step through this object

    def make(self, seed: int) -> DemoResult:
        from mani_skill.trajectory.utils.actions.conversion import from_pd_joint_pos

        self._planned_actions = []
        try:
            result = self._solve(self._planner_env, seed=seed, debug=False, vis=False)
        except Exception as exc:  # noqa: BLE001  planners raise on unreachable poses; skip seed
            return DemoResult(self.task, seed, None, f"planner error: {exc}")
        steps = len(self._planned_actions)
        if result == -1 or not bool(result[-1]["success"].item()):
            return DemoResult(self.task, seed, None, "planner did not succeed", steps)
        self._replay_env.reset(seed=seed)
        self._target.reset(seed=seed)
        if self.settings.control_mode == PLANNER_CONTROL_MODE:
            info: dict = {}
            for action in self._planned_actions:
                info = self._target.step(action)[-1]
        else:
            try:
                info = from_pd_joint_pos(
                    self.settings.control_mode,
                    np.stack(self._planned_actions),
                    self._replay_env,
                    self._target,
                )
            except (NotImplementedError, AssertionError) as exc:
                raise ConfigError(
                    f"cannot convert planner actions (pd_joint_pos) to control_mode "
                    f"'{self.settings.control_mode}': {exc}; use pd_ee_delta_pose, "
                    "pd_ee_delta_pos, pd_joint_delta_pos or pd_joint_pos"
                ) from None
        length = len(self._target.actions)
        if not bool(np.asarray(info.get("success", False)).any()):
            return DemoResult(self.task, seed, None, "converted replay did not succeed", steps)
        if length > self.max_episode_steps:
            return DemoResult(self.task, seed, None, f"demo too long ({length} steps)", steps)
        rec = self._target
        episode = DemoEpisode(
            task=self.task,
            seed=seed,
            instruction=self.instruction,
            state=np.stack(rec.states[:length]).astype(np.float32),
            actions=np.stack(rec.actions).astype(np.float32),
            success=True,
            rgb=np.stack(rec.images[:length]) if rec.images else None,
        )
        return DemoResult(self.task, seed, episode, "", steps)

    def close(self) -> None:
        for env in (self._planner_env, self._replay_env, self._target.env):
            env.close()

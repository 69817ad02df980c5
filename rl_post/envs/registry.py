"""Task registry (ManiSkill id -> language instruction) and validation of env config values.

Every task here is a ManiSkill3 tabletop task built from primitives and the bundled Panda robot,
so none needs downloaded assets. Each validator raises ConfigError naming the valid choices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rl_post.config import ConfigError


@dataclass(frozen=True)
class TaskInfo:
    env_id: str
    instruction: str


TASKS: dict[str, TaskInfo] = {
    info.env_id: info
    for info in (
        TaskInfo("PickCube-v1", "pick up the red cube and move it to the green goal position"),
        TaskInfo("PushCube-v1", "push the cube onto the red and white target on the table"),
        TaskInfo("PullCube-v1", "pull the cube back onto the red and white target on the table"),
        TaskInfo("StackCube-v1", "pick up the red cube and stack it on top of the green cube"),
        TaskInfo("PegInsertionSide-v1", "pick up the peg and insert it into the hole in the box"),
        TaskInfo("LiftPegUpright-v1", "lift the peg lying on the table and stand it upright"),
        TaskInfo("PokeCube-v1", "grasp the peg and use it to poke the cube onto the goal"),
        TaskInfo("PlaceSphere-v1", "pick up the blue sphere and place it into the bin"),
    )
}

# Our obs modes -> the ManiSkill obs_mode that produces them (see obs_adapter.py).
OBS_MODES: dict[str, str] = {"state": "state", "rgb": "rgb", "state_rgb": "state+rgb"}
# Controllers of ManiSkill's Panda (mani_skill/agents/robots/panda/panda.py), the robot of every
# registered task.
CONTROL_MODES: tuple[str, ...] = (
    "pd_joint_delta_pos",
    "pd_joint_pos",
    "pd_ee_delta_pos",
    "pd_ee_delta_pose",
    "pd_ee_pose",
    "pd_joint_target_delta_pos",
    "pd_ee_target_delta_pos",
    "pd_ee_target_delta_pose",
    "pd_joint_vel",
    "pd_joint_pos_vel",
    "pd_joint_delta_pos_vel",
)
REWARD_MODES: tuple[str, ...] = ("sparse", "dense", "normalized_dense")
BACKENDS: tuple[str, ...] = ("cpu", "gpu")
RESET_MODES: tuple[str, ...] = ("independent", "synchronized")
START_METHODS: tuple[str, ...] = ("forkserver", "spawn")


def _choose(kind: str, value: object, choices: Iterable[str], key: str) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(
            f"unknown {kind} '{value}' (env.{key}); valid choices: {', '.join(choices)}"
        )
    return str(value)


def validate_task(task: object) -> str:
    return _choose("task", task, TASKS, "tasks")


def validate_obs_mode(obs_mode: object) -> str:
    return _choose("obs_mode", obs_mode, OBS_MODES, "obs_mode")


def validate_control_mode(control_mode: object) -> str:
    return _choose("control_mode", control_mode, CONTROL_MODES, "control_mode")


def validate_reward_mode(reward_mode: object) -> str:
    return _choose("reward_mode", reward_mode, REWARD_MODES, "reward_mode")


def validate_reset_mode(reset_mode: object) -> str:
    return _choose("reset_mode", reset_mode, RESET_MODES, "reset_mode")


def validate_start_method(start_method: object) -> str:
    return _choose("start_method", start_method, START_METHODS, "start_method")


def validate_backend(backend: object) -> str:
    """Also checks that the gpu backend has a CUDA device to run on."""
    backend = _choose("backend", backend, BACKENDS, "backend")
    if backend == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "env.backend=gpu needs a CUDA GPU, but torch.cuda.is_available() is False on "
                "this machine; use env.backend=cpu (one simulator process per sub-env)"
            )
    return backend


def instruction_for(task: str) -> str:
    return TASKS[validate_task(task)].instruction

"""Hand-written potentials for `reward.shaping=potential reward.potential=<module>:<function>`.

Each takes the raw (unnormalized) observation dict of a flat batch and returns Phi [B]. They read
fixed slots of one task's flattened ManiSkill state, so each checks the state width it was written
for and names the task in its error.
"""

from __future__ import annotations

import torch

# PickCube-v1 state obs (ManiSkill 3): agent qpos 9, qvel 9, then extra: is_grasped 1, tcp_pose 7,
# goal_pos 3, obj_pose 7, tcp_to_obj_pos 3, obj_to_goal_pos 3 -> 42 values, obj_to_goal last.
PICKCUBE_STATE_DIM = 42
PICKCUBE_QVEL = slice(9, 18)
PICKCUBE_IS_GRASPED = 18
PICKCUBE_OBJ_TO_GOAL = slice(39, 42)
# PickCube's success radius (PickCubeEnv.goal_thresh): the potential is steepest inside it, where
# the env's dense place term, 1 - tanh(5 d), is almost flat (0.88 at 2.5 cm, 0.86 at 3 cm).
PICKCUBE_GOAL_THRESH = 0.025


def pickcube_goal_proximity(obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Phi = 1 - tanh(d / 0.025), d = |cube - goal| in metres: 1 at the goal, 0.24 at the success
    radius, 0.04 at 5 cm. Scale it with reward.shaping_scale (raw env reward units)."""
    state = obs["state"]
    if state.shape[-1] != PICKCUBE_STATE_DIM:
        raise ValueError(
            f"pickcube_goal_proximity reads PickCube-v1's {PICKCUBE_STATE_DIM}-value state obs, got "
            f"{state.shape[-1]} values; use it only with env=pickcube env.obs_mode=state (one task)"
        )
    distance = state[..., PICKCUBE_OBJ_TO_GOAL].float().norm(dim=-1)
    return 1.0 - torch.tanh(distance / PICKCUBE_GOAL_THRESH)

"""What a PickCube policy does when it holds the cube near, but not at, the goal.

For every step where the cube is grasped and 2.5-6 cm from the goal (outside the success radius),
records the commanded end-effector position delta (env action units: 1 = 0.1 m) against the
cube-to-goal direction, and the cube's progress toward the goal. Also reports, per episode,
whether the cube was ever grasped / placed and the closest approach. One in-process env (no
vector env): a diagnostic, not an evaluation; `rl-post eval` gives success with intervals.

    python scripts/pickcube_hover_probe.py <checkpoint dir> --mode deterministic --episodes 20

With --demos <h5 file>, it instead feeds the demos' own hover states to the policy, as recorded and
with the joint velocities set to zero: what the policy commands where the demos move fast, and
whether it reads the arm's speed rather than the goal offset.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from rl_post.rewards.potentials import PICKCUBE_IS_GRASPED as IS_GRASPED
from rl_post.rewards.potentials import PICKCUBE_OBJ_TO_GOAL as OBJ_TO_GOAL
from rl_post.rewards.potentials import PICKCUBE_QVEL as QVEL

HOVER_MIN_M = 0.025  # PickCube's success radius
HOVER_MAX_M = 0.06
EVAL_SEED_BASE = 1_000_000_000  # the held-out evaluation seeds (configs/eval.yaml)


def on_demo_states(checkpoint: str, demos: str) -> dict[str, Any]:
    import h5py
    import numpy as np

    from rl_post.envs.registry import instruction_for
    from rl_post.models.checkpoint import load_policy

    torch.set_num_threads(1)
    states, actions = [], []
    with h5py.File(demos, "r") as file:
        for episode in file["episodes"].values():
            state, action = episode["obs/state"][:], episode["actions"][:]
            distance = np.linalg.norm(state[:, OBJ_TO_GOAL], axis=1)
            hover = (
                (distance > HOVER_MIN_M) & (distance < HOVER_MAX_M) & (state[:, IS_GRASPED] > 0.5)
            )
            states.append(state[hover])
            actions.append(action[hover])
    state = torch.tensor(np.concatenate(states))
    demo_move = torch.tensor(np.concatenate(actions))[:, :3]
    policy = load_policy(checkpoint, device="cpu")
    policy.eval()
    still = state.clone()
    still[:, QVEL] = 0.0
    out: dict[str, Any] = {
        "checkpoint": checkpoint,
        "demos": demos,
        "hover_states": len(state),
        "demo_move_mm_median": 100 * float(demo_move.norm(dim=1).median()),
    }
    for label, inputs in (("as_recorded", state), ("joint_velocities_zeroed", still)):
        obs = {"state": inputs, "instruction": [instruction_for("PickCube-v1")] * len(inputs)}
        with torch.no_grad():
            chunk = policy.act(
                obs, mode="deterministic", generator=torch.Generator().manual_seed(0)
            )
        move = chunk.actions[:, 0, :3]
        cos = (move * demo_move).sum(1) / (move.norm(dim=1) * demo_move.norm(dim=1)).clamp_min(1e-9)
        out[label] = {
            "policy_move_mm_median": 100 * float(move.norm(dim=1).median()),
            "cos_to_demo_move_median": float(cos.median()),
        }
    return out


def run(checkpoint: str, mode: str, episodes: int, seed_base: int) -> dict[str, Any]:
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401
    from omegaconf import OmegaConf

    from rl_post.config import config_dir
    from rl_post.envs.maniskill_env import convert_obs
    from rl_post.envs.registry import instruction_for
    from rl_post.envs.settings import parse_env_settings
    from rl_post.models.checkpoint import load_policy

    torch.set_num_threads(1)
    settings = parse_env_settings(
        OmegaConf.load(config_dir() / "env" / "pickcube.yaml"), check_device=False
    )
    env = gym.make("PickCube-v1", obs_mode="state", control_mode="pd_ee_delta_pose").unwrapped
    policy = load_policy(checkpoint, device="cpu")
    policy.eval()
    generator = torch.Generator().manual_seed(0)
    instruction = [instruction_for("PickCube-v1")]
    cosines, norms, progress = [], [], []
    grasped_eps = placed_eps = 0
    closest = []
    for episode in range(episodes):
        raw, _ = env.reset(seed=seed_base + episode)
        steps, grasped_once, placed_once, nearest = 0, False, False, float("inf")
        while steps < settings.max_episode_steps:
            obs = {**convert_obs(raw, settings), "instruction": instruction}
            with torch.no_grad():
                chunk = policy.act(obs, mode=mode, generator=generator).actions[0]
            for action in chunk[: int(policy.execute_steps)]:
                to_goal = (env.goal_site.pose.p - env.cube.pose.p)[0]
                distance = float(to_goal.norm())
                grasped = bool(env.agent.is_grasping(env.cube)[0])
                cube_before = env.cube.pose.p[0].clone()
                raw, _, _, _, info = env.step(action.unsqueeze(0))
                steps += 1
                grasped_once |= bool(info["is_grasped"][0])
                placed_once |= bool(info["is_obj_placed"][0])
                nearest = min(nearest, float((env.goal_site.pose.p - env.cube.pose.p)[0].norm()))
                if grasped and HOVER_MIN_M < distance < HOVER_MAX_M:
                    move = action[:3]
                    direction = to_goal / distance
                    cosines.append(float(move @ direction / move.norm().clamp_min(1e-9)))
                    norms.append(float(move.norm()))
                    progress.append(float((env.cube.pose.p[0] - cube_before) @ direction))
                if steps >= settings.max_episode_steps:
                    break
        grasped_eps += grasped_once
        placed_eps += placed_once
        closest.append(nearest)
    env.close()
    hover = torch.tensor(cosines)
    return {
        "checkpoint": checkpoint,
        "mode": mode,
        "episodes": episodes,
        "seeds": [seed_base, seed_base + episodes - 1],
        "grasped_share": grasped_eps / episodes,
        "placed_share": placed_eps / episodes,
        "closest_approach_cm_median": 100 * float(torch.tensor(closest).median()),
        "hover_steps": len(cosines),
        "hover_cos_to_goal_median": float(hover.median()) if len(cosines) else None,
        "hover_commanded_move_mm_median": 100 * float(torch.tensor(norms).median())
        if norms
        else None,
        "hover_progress_mm_per_step_mean": 1000 * float(torch.tensor(progress).mean())
        if progress
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--mode", default="deterministic", choices=["deterministic", "stochastic"])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE)
    parser.add_argument("--demos", default=None, help="demo h5: probe the demos' hover states")
    args = parser.parse_args()
    if args.demos:
        print(json.dumps(on_demo_states(args.checkpoint, args.demos), indent=1))
        return
    print(json.dumps(run(args.checkpoint, args.mode, args.episodes, args.seed_base), indent=1))


if __name__ == "__main__":
    main()

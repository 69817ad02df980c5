"""Chunk semantics of ChunkedVectorEnv on a scripted in-process backend (no simulator)."""

from __future__ import annotations

import pytest
import torch

from rl_post.envs.chunked import ChunkedVectorEnv, ChunkOutcome, TensorObs
from rl_post.envs.settings import EnvSettings
from rl_post.envs.spec import ObsSpec


def make_settings(**overrides) -> EnvSettings:
    values = dict(
        tasks=("PickCube-v1",),
        backend="cpu",
        num_envs=2,
        obs_mode="state",
        cameras=(),
        image_size=(64, 64),
        control_mode="pd_ee_delta_pose",
        reward_mode="sparse",
        max_episode_steps=10,
        ignore_terminations=False,
        reset_mode="independent",
        group_size=1,
        seed=100,
        seed_offset=0,
        sim_device="cuda",
        start_method="forkserver",
        worker_timeout_s=10.0,
    )
    values.update(overrides)
    return EnvSettings(**values)


class ScriptedEnv(ChunkedVectorEnv):
    """Each step gives reward = its action[0]; an episode succeeds (terminates) once its elapsed
    step count reaches `success_at[seed]`. state = [seed, elapsed]."""

    def __init__(self, settings: EnvSettings, success_at: dict[int, int]) -> None:
        super().__init__(settings, ObsSpec(state_dim=2, action_dim=1), torch.device("cpu"))
        self.success_at = success_at
        self.elapsed = [0] * settings.num_envs
        self.seed_of = [0] * settings.num_envs
        self.reset_log: list[tuple[list[int], list[int]]] = []
        self.stepped: list[int] = [0] * settings.num_envs

    def _reset_envs(self, env_ids: list[int], seeds: list[int]) -> TensorObs:
        self.reset_log.append((list(env_ids), list(seeds)))
        for i, s in zip(env_ids, seeds, strict=True):
            self.elapsed[i], self.seed_of[i] = 0, s
        return {"state": torch.tensor([[float(s), 0.0] for s in seeds])}

    def _run_chunk(self, actions: torch.Tensor, budget: torch.Tensor) -> ChunkOutcome:
        n = self.num_envs
        reward = torch.zeros(n)
        terminated = torch.zeros(n, dtype=torch.bool)
        success = torch.zeros(n, dtype=torch.bool)
        steps = torch.zeros(n, dtype=torch.int64)
        for i in range(n):
            for t in range(int(budget[i])):
                self.elapsed[i] += 1
                self.stepped[i] += 1
                steps[i] += 1
                reward[i] += actions[i, t, 0]
                success[i] = self.elapsed[i] >= self.success_at.get(self.seed_of[i], 10**9)
                if success[i] and not self.settings.ignore_terminations:
                    terminated[i] = True
                    break
        state = torch.tensor([[float(self.seed_of[i]), float(self.elapsed[i])] for i in range(n)])
        # a milestone flag true at the episode's 3rd step only: reached in the chunk running it
        third = torch.tensor(
            [self.elapsed[i] - int(steps[i]) < 3 <= self.elapsed[i] for i in range(n)]
        )
        return ChunkOutcome(
            {"state": state}, reward, terminated, success, success.clone(), steps, {"third": third}
        )

    def close(self) -> None:
        pass


def ramp_actions(n: int, h: int) -> torch.Tensor:
    """action value t+1 at chunk position t, so reward sums reveal how many steps ran."""
    return torch.arange(1, h + 1, dtype=torch.float32).repeat(n, 1).unsqueeze(-1)


def test_initial_reset_uses_seed_cursor_and_groups():
    env = ScriptedEnv(make_settings(num_envs=4, group_size=2, seed=100), {})
    obs = env.reset()
    assert obs["state"][:, 0].tolist() == [100, 100, 101, 101]
    assert obs["instruction"] == [env.instructions[0]] * 4
    assert env.seed_cursor() == 2
    env.set_seed_cursor(7)
    assert env.reset()["state"][:, 0].tolist() == [107, 107, 108, 108]


def test_seed_offset_shifts_seeds():
    env = ScriptedEnv(make_settings(seed=100, seed_offset=1000), {})
    assert env.reset()["state"][:, 0].tolist() == [1100, 1101]
    assert env.reset(seeds=[5, 5])["state"][:, 0].tolist() == [5, 5]


def test_termination_inside_chunk_stops_and_auto_resets():
    env = ScriptedEnv(make_settings(), success_at={100: 2})
    env.reset()  # seeds 100 (succeeds at step 2), 101 (never)
    result = env.step_chunk(ramp_actions(2, 5), k=4)
    assert result.steps.tolist() == [2, 4]
    assert result.reward.tolist() == [1 + 2, 1 + 2 + 3 + 4]
    assert result.terminated.tolist() == [True, False]
    assert result.truncated.tolist() == [False, False]
    assert result.success.tolist() == [True, False]
    # final_obs keeps the terminal state; obs is the next episode (seed 102 from the cursor)
    assert result.final_obs["state"][0].tolist() == [100, 2]
    assert result.obs["state"][0].tolist() == [102, 0]
    assert result.obs["state"][1].tolist() == result.final_obs["state"][1].tolist() == [101, 4]
    (episode,) = result.episodes
    assert (episode.env_index, episode.seed, episode.length) == (0, 100, 2)
    assert episode.success_once and episode.success_at_end
    assert episode.episode_return == 3.0


def test_time_limit_truncates_inside_chunk():
    env = ScriptedEnv(make_settings(max_episode_steps=6), {})
    env.reset()
    first = env.step_chunk(ramp_actions(2, 4), k=4)
    assert first.steps.tolist() == [4, 4] and not first.done.any()
    second = env.step_chunk(ramp_actions(2, 4), k=4)
    assert second.steps.tolist() == [2, 2]
    assert second.truncated.tolist() == [True, True]
    assert second.terminated.tolist() == [False, False]
    assert [e.length for e in second.episodes] == [6, 6]
    assert [e.episode_return for e in second.episodes] == [10 + 3, 10 + 3]
    assert second.final_obs["state"][:, 1].tolist() == [6, 6]
    assert second.obs["state"][:, 0].tolist() == [102, 103]


def test_ignore_terminations_runs_to_time_limit():
    env = ScriptedEnv(make_settings(max_episode_steps=4, ignore_terminations=True), {100: 1})
    env.reset()
    result = env.step_chunk(ramp_actions(2, 4), k=4)
    assert result.steps.tolist() == [4, 4]
    assert result.terminated.tolist() == [False, False]
    assert result.truncated.tolist() == [True, True]
    ep0 = result.episodes[0]
    assert ep0.success_once and ep0.success_at_end and ep0.length == 4


def test_synchronized_mode_idles_finished_envs_until_all_finish():
    settings = make_settings(num_envs=4, group_size=2, reset_mode="synchronized")
    env = ScriptedEnv(settings, success_at={100: 1})  # group 0 (envs 0, 1) succeeds at step 1
    env.reset()
    first = env.step_chunk(ramp_actions(4, 2), k=2)
    assert first.terminated.tolist() == [True, True, False, False]
    assert first.active.all()
    # finished envs are not reset: obs stays their final observation
    assert first.obs["state"][:2].tolist() == [[100, 1], [100, 1]]
    assert len(env.reset_log) == 1
    second = env.step_chunk(ramp_actions(4, 2), k=2)
    assert second.active.tolist() == [False, False, True, True]
    assert second.reward.tolist() == [0, 0, 3, 3]
    assert second.steps.tolist() == [0, 0, 2, 2]
    assert env.stepped[:2] == [1, 1]  # idle envs were never stepped
    assert not second.done[:2].any()
    # run group 1 to the time limit (10 steps): then everyone resets together, one seed per group
    last = second
    while len(env.reset_log) == 1:
        last = env.step_chunk(ramp_actions(4, 2), k=2)
    assert last.truncated.tolist() == [False, False, True, True]
    assert env.reset_log[-1] == ([0, 1, 2, 3], [102, 102, 103, 103])
    assert last.obs["state"][:, 0].tolist() == [102, 102, 103, 103]
    assert last.final_obs["state"][:, 1].tolist() == [1, 1, 10, 10]


def test_bad_actions_are_rejected():
    env = ScriptedEnv(make_settings(), {})
    env.reset()
    for bad, k in ((torch.zeros(3, 4, 1), 1), (torch.zeros(2, 4, 2), 1), (torch.zeros(2, 4, 1), 5)):
        with pytest.raises(ValueError):
            env.step_chunk(bad, k)


def test_milestones_are_kept_for_the_episode_and_cleared_at_its_reset():
    # first episodes (seeds 100, 101) run 6 steps; the next ones (102, 103) succeed at step 2
    env = ScriptedEnv(make_settings(max_episode_steps=6), {102: 2, 103: 2})
    env.reset()
    assert env.step_chunk(ramp_actions(2, 2), k=2).episodes == []  # steps 1-2: not yet
    env.step_chunk(ramp_actions(2, 2), k=2)  # steps 3-4: reached
    last = env.step_chunk(ramp_actions(2, 2), k=2)  # steps 5-6: false again, the episode ends
    assert [(e.seed, e.milestones) for e in last.episodes] == [
        (100, {"third": True}),
        (101, {"third": True}),
    ]
    ended = env.step_chunk(ramp_actions(2, 4), k=4).episodes  # terminated at step 2
    assert [(e.seed, e.milestones) for e in ended] == [
        (102, {"third": False}),
        (103, {"third": False}),
    ]

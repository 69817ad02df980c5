"""The peer baseline: ManiSkill3's own PPO recipe (examples/baselines/ppo/ppo.py, CleanRL style),
re-stated on CPU vector envs so it runs on the same machine as rl_post's MLP baseline.

    .venv/bin/python scripts/peer_maniskill_ppo.py --env-id PushCube-v1 --total-steps 400000 \
        --out docs/results/peer_maniskill_ppo_pushcube.json

What is ppo.py's: the agent (two 3x256 tanh MLPs, orthogonal init, state-independent log-std
starting at -0.5), Adam 3e-4 eps 1e-5, gamma 0.8 / lambda 0.9 per env step, clip 0.2, value
coefficient 0.5, no value clipping, no entropy bonus, grad-norm clip 0.5, early stop of the
epochs at approx KL 0.1, per-minibatch advantage normalization, pd_joint_delta_pos with the
normalized dense reward, envs that reset when done and a bootstrap of V(final observation) at
every done (termination or truncation). What is adapted to this CPU: 4 envs in their own processes
(gymnasium AsyncVectorEnv over CPUGymWrapper) and 200 steps per env per update (ppo.py runs 512+
GPU envs x 50 steps); PushCube's epochs/minibatches (8 x 32) are those of ManiSkill's examples.sh.

Evaluations use rl_post's held-out protocol: deterministic (mean) actions, success_once, seeds
1e9, 1e9+1, ... (rl_post's eval.seed_base), never used for training. It writes the JSON that
`python -m rl_post.bench.peer_curves --peer` plots: "curve" (small evals, every --eval-every
env steps) and "big_evals" (--big-eval-episodes, every --big-eval-every env steps), each entry
{env_steps, successes, episodes, wall_s}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions.normal import Normal

EVAL_SEED_BASE = 1_000_000_000
TRAIN_SEED_BASE = 0


def layer(n_in: int, n_out: int, std: float = float(np.sqrt(2))) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, std)
    nn.init.constant_(linear.bias, 0.0)
    return linear


def mlp(n_in: int, n_out: int, out_std: float) -> nn.Sequential:
    return nn.Sequential(
        layer(n_in, 256),
        nn.Tanh(),
        layer(256, 256),
        nn.Tanh(),
        layer(256, 256),
        nn.Tanh(),
        layer(256, n_out, std=out_std),
    )


class Agent(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        self.critic = mlp(obs_dim, 1, out_std=1.0)
        self.actor_mean = mlp(obs_dim, act_dim, out_std=0.01 * float(np.sqrt(2)))
        self.actor_logstd = nn.Parameter(torch.full((1, act_dim), -0.5))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).view(-1)

    def dist(self, obs: torch.Tensor) -> Normal:
        mean = self.actor_mean(obs)
        return Normal(mean, self.actor_logstd.expand_as(mean).exp())


def make_env(env_id: str, max_episode_steps: int, ignore_terminations: bool):
    def thunk() -> gym.Env:
        import mani_skill.envs  # noqa: F401  (registers the tasks in this process)
        from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

        env = gym.make(
            env_id,
            obs_mode="state",
            control_mode="pd_joint_delta_pos",
            reward_mode="normalized_dense",
            sim_backend="cpu",
            max_episode_steps=max_episode_steps,
        )
        return CPUGymWrapper(env, ignore_terminations=ignore_terminations, record_metrics=True)

    return thunk


def vector_env(env_id: str, n: int, max_episode_steps: int, ignore_terminations: bool):
    thunk = make_env(env_id, max_episode_steps, ignore_terminations)
    return gym.vector.AsyncVectorEnv([thunk] * n, context="forkserver")


def done_infos(infos: dict) -> list[tuple[int, dict]]:
    """(env index, final info) of every env whose episode ended in this step (gymnasium 0.29)."""
    if "final_info" not in infos:
        return []
    return [(i, infos["final_info"][i]) for i in np.flatnonzero(infos["_final_info"])]


def evaluate(agent: Agent, envs: gym.vector.VectorEnv, episodes: int, horizon: int) -> int:
    """Held-out successes over `episodes` episodes with seeds EVAL_SEED_BASE + k, in waves."""
    n = envs.num_envs
    successes = 0
    for start in range(0, episodes, n):
        wave = min(n, episodes - start)
        seeds = [EVAL_SEED_BASE + start + i for i in range(n)]
        obs, _ = envs.reset(seed=seeds)
        ended = np.zeros(n, dtype=bool)
        for _ in range(horizon):
            with torch.no_grad():
                action = agent.dist(torch.as_tensor(obs, dtype=torch.float32)).mean
            obs, _, _, _, infos = envs.step(action.numpy())
            for i, info in done_infos(infos):
                if not ended[i] and i < wave:
                    successes += int(bool(info["episode"]["success_once"]))
                ended[i] = True
            if ended.all():
                break
    return successes


def raw_sim_rate(envs: gym.vector.VectorEnv, vector_steps: int) -> float:
    """Env steps per second of the same vector env with random actions (no policy, no learner):
    the denominator of the peer's training-to-simulator ratio."""
    envs.reset(seed=[TRAIN_SEED_BASE + 10_000 + i for i in range(envs.num_envs)])
    started = time.perf_counter()
    for _ in range(vector_steps):
        envs.step(envs.action_space.sample())
    return vector_steps * envs.num_envs / (time.perf_counter() - started)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    final_values: torch.Tensor,
    dones_after: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """GAE with ppo.py's done handling: after a done the next value is V(final obs) of that
    episode, and the advantage does not run on into the next episode."""
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        not_done = 1.0 - dones_after[t]
        next_values = not_done * following + final_values[t]
        delta = rewards[t] + gamma * next_values - values[t]
        running = delta + gamma * lam * not_done * running
        advantages[t] = running
    return advantages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="PushCube-v1")
    parser.add_argument("--total-steps", type=int, default=400_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--num-steps", type=int, default=200)
    parser.add_argument("--max-episode-steps", type=int, default=50)
    parser.add_argument("--update-epochs", type=int, default=8)
    parser.add_argument("--num-minibatches", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--gamma", type=float, default=0.8)
    parser.add_argument("--gae-lambda", type=float, default=0.9)
    parser.add_argument("--clip-coef", type=float, default=0.2)
    parser.add_argument("--vf-coef", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    parser.add_argument("--target-kl", type=float, default=0.1)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--big-eval-every", type=int, default=50_000)
    parser.add_argument("--big-eval-episodes", type=int, default=100)
    parser.add_argument(
        "--sim-steps",
        type=int,
        default=500,
        help="vector steps timed for the raw-sim rate, before and after training (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(1)
    envs = vector_env(args.env_id, args.num_envs, args.max_episode_steps, False)
    eval_envs = vector_env(args.env_id, args.num_envs, args.max_episode_steps, True)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(np.prod(envs.single_action_space.shape))
    low = torch.as_tensor(envs.single_action_space.low)
    high = torch.as_tensor(envs.single_action_space.high)
    agent = Agent(obs_dim, act_dim)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)

    n, steps = args.num_envs, args.num_steps
    batch = n * steps
    minibatch = batch // args.num_minibatches
    result: dict = {
        "system": "ManiSkill3 PPO recipe (examples/baselines/ppo/ppo.py) on CPU vector envs",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "curve": [],
        "big_evals": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def record(key: str, env_steps: int, episodes: int) -> None:
        eval_started = time.perf_counter()
        successes = evaluate(agent, eval_envs, episodes, args.max_episode_steps)
        eval_time[0] += time.perf_counter() - eval_started
        result[key].append(
            {
                "env_steps": env_steps,
                "successes": successes,
                "episodes": episodes,
                "wall_s": time.perf_counter() - started,
                "train_wall_s": time.perf_counter() - started - eval_time[0],
            }
        )
        print(f"[peer] {key} at {env_steps} env steps: {successes}/{episodes}", flush=True)
        args.out.write_text(json.dumps(result, indent=1))

    sim_rates = [raw_sim_rate(envs, args.sim_steps)] if args.sim_steps > 0 else []
    started = time.perf_counter()
    eval_time = [0.0]
    env_steps = 0
    next_eval, next_big = 0, 0
    obs_np, _ = envs.reset(seed=[TRAIN_SEED_BASE + args.seed * 1000 + i for i in range(n)])
    next_obs = torch.as_tensor(obs_np, dtype=torch.float32)
    obs_buf = torch.zeros(steps, n, obs_dim)
    act_buf = torch.zeros(steps, n, act_dim)
    logp_buf = torch.zeros(steps, n)
    rew_buf = torch.zeros(steps, n)
    done_buf = torch.zeros(steps, n)
    val_buf = torch.zeros(steps, n)
    while env_steps < args.total_steps:
        if env_steps >= next_big:
            record("big_evals", env_steps, args.big_eval_episodes)
            next_big += args.big_eval_every
        if env_steps >= next_eval:
            record("curve", env_steps, args.eval_episodes)
            next_eval += args.eval_every
        final_values = torch.zeros(steps, n)
        train_episodes: list[tuple[float, bool]] = []
        for t in range(steps):
            obs_buf[t] = next_obs
            with torch.no_grad():
                dist = agent.dist(next_obs)
                action = dist.sample()
                logp_buf[t] = dist.log_prob(action).sum(-1)
                val_buf[t] = agent.value(next_obs)
            act_buf[t] = action
            clipped = torch.clamp(action, low, high).numpy()
            obs_np, reward, terminated, truncated, infos = envs.step(clipped)
            env_steps += n
            done = np.logical_or(terminated, truncated)
            rew_buf[t] = torch.as_tensor(reward, dtype=torch.float32)
            done_buf[t] = torch.as_tensor(done, dtype=torch.float32)
            for i, info in done_infos(infos):
                train_episodes.append(
                    (float(info["episode"]["return"]), bool(info["episode"]["success_once"]))
                )
                final_obs = torch.as_tensor(infos["final_observation"][i], dtype=torch.float32)
                with torch.no_grad():
                    final_values[t, i] = agent.value(final_obs[None])[0]
            next_obs = torch.as_tensor(obs_np, dtype=torch.float32)
        with torch.no_grad():
            next_value = agent.value(next_obs)
        advantages = gae(
            rew_buf, val_buf, final_values, done_buf, next_value, args.gamma, args.gae_lambda
        )
        returns = advantages + val_buf
        b_obs, b_act = obs_buf.reshape(batch, obs_dim), act_buf.reshape(batch, act_dim)
        b_logp, b_adv, b_ret = logp_buf.reshape(-1), advantages.reshape(-1), returns.reshape(-1)
        stop = False
        for _ in range(args.update_epochs):
            order = torch.randperm(batch)
            for start in range(0, batch, minibatch):
                idx = order[start : start + minibatch]
                dist = agent.dist(b_obs[idx])
                log_ratio = dist.log_prob(b_act[idx]).sum(-1) - b_logp[idx]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                if approx_kl > args.target_kl:
                    stop = True
                    break
                adv = b_adv[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(
                    -adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
                ).mean()
                v_loss = 0.5 * ((agent.value(b_obs[idx]) - b_ret[idx]) ** 2).mean()
                loss = pg_loss + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
            if stop:
                break
        if train_episodes:
            returns_, wins = zip(*train_episodes, strict=True)
            print(
                f"[peer] train {env_steps} env steps: {len(wins)} episodes, success "
                f"{np.mean(wins):.2f}, return {np.mean(returns_):.2f}, kl {float(approx_kl):.3f}",
                flush=True,
            )
    record("big_evals", env_steps, args.big_eval_episodes)
    record("curve", env_steps, args.eval_episodes)
    train_s = time.perf_counter() - started - eval_time[0]
    result["env_steps"] = env_steps
    result["train_wall_s"] = train_s
    result["env_steps_per_s"] = env_steps / train_s
    if args.sim_steps > 0:
        sim_rates.append(raw_sim_rate(envs, args.sim_steps))
        result["raw_sim_env_steps_per_s"] = sim_rates
        result["train_to_sim_ratio"] = result["env_steps_per_s"] / float(np.mean(sim_rates))
    args.out.write_text(json.dumps(result, indent=1))
    envs.close()
    eval_envs.close()


if __name__ == "__main__":
    main()

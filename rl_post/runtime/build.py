"""Builds the rollout side of a run (env shards, rollout workers) in-process or on Ray.

The layout is the same at every scale: `runtime.num_rollout_workers` workers, each owning
`runtime.pipeline_stages` env shards; only device placement and the env backend differ on GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rl_post.actors.env_worker import EnvShard, LocalEnvHandle, RayEnvHandle, env_worker_actor_class
from rl_post.actors.pipeline import LOCKSTEP, PIPELINED, ProbeSettings, parse_pipeline_stages
from rl_post.actors.rollout_worker import RolloutWorker
from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec


@dataclass(frozen=True)
class RolloutLayout:
    num_workers: int
    stages: int  # env shards per worker
    envs_per_worker: int
    envs_per_shard: int
    seed_stride: int
    schedule: str = PIPELINED  # pipelined | lockstep | auto (rl_post/actors/pipeline.py)

    def shard_seed_offset(self, worker: int, stage: int) -> int:
        return (worker * self.stages + stage) * self.seed_stride


def plan_layout(num_envs: int, group_size: int, runtime_cfg: DictConfig) -> RolloutLayout:
    workers = int(runtime_cfg.num_rollout_workers)
    if num_envs % group_size != 0:
        raise ConfigError(
            f"env.num_envs={num_envs} is not divisible by the group size {group_size}; "
            f"use a multiple of {group_size} (e.g. env.num_envs={group_size * max(1, num_envs // group_size)})"
        )
    if workers < 1 or num_envs % workers != 0 or (num_envs // workers) % group_size != 0:
        raise ConfigError(
            f"env.num_envs={num_envs} cannot be split evenly over runtime.num_rollout_workers={workers} "
            f"with whole groups of {group_size}; choose num_envs as a multiple of workers x group size"
        )
    per_worker = num_envs // workers
    stages, schedule = parse_pipeline_stages(runtime_cfg.pipeline_stages)
    # A shard must hold whole groups (a group resets together); fall back to fewer stages if not.
    while stages > 1 and (per_worker % stages != 0 or (per_worker // stages) % group_size != 0):
        stages -= 1
    if stages == 1:
        schedule = LOCKSTEP
    return RolloutLayout(
        workers,
        stages,
        per_worker,
        per_worker // stages,
        int(runtime_cfg.env_seed_stride),
        schedule,
    )


def probe_settings(runtime_cfg: DictConfig) -> ProbeSettings:
    probe = runtime_cfg.get("pipeline_probe") or {}
    defaults = ProbeSettings()
    return ProbeSettings(
        block_steps=int(probe.get("block_steps", defaults.block_steps)),
        blocks=int(probe.get("blocks", defaults.blocks)),
        min_gain=float(probe.get("min_gain", defaults.min_gain)),
    )


ENV_SHARD_PLACEMENTS = ("auto", "in_process", "actor")


def env_shards_in_process(runtime_cfg: DictConfig, env_cfg: DictConfig) -> bool:
    """Where a Ray rollout worker's env shards live (runtime.placement.env_shards).

    auto: in the rollout worker's own process for the cpu backend, whose env processes are separate
    already (an EnvWorker actor in between only adds a Ray round trip and a process per chunk-step;
    measured in the README), and in EnvWorker actors for the gpu backend, where the actor is the
    simulator's process."""
    wanted = str(runtime_cfg.placement.get("env_shards", "auto"))
    if wanted not in ENV_SHARD_PLACEMENTS:
        raise ConfigError(
            f"runtime.placement.env_shards={wanted!r}; valid choices: {', '.join(ENV_SHARD_PLACEMENTS)}"
        )
    if wanted == "auto":
        return str(env_cfg.backend) == "cpu"
    return wanted == "in_process"


def rollout_device(runtime_cfg: DictConfig) -> str:
    wanted = str(runtime_cfg.placement.rollout_device)
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            "runtime.placement.rollout_device=cuda but CUDA is not available; use cpu or auto"
        )
    return wanted


def _make_worker(
    policy: torch.nn.Module,
    shard_factory: Any,
    layout: RolloutLayout,
    worker_index: int,
    total_envs: int,
    cfg: DictConfig,
    device: str,
) -> RolloutWorker:
    return RolloutWorker(
        policy=policy,
        shard_factory=shard_factory,
        shard_sizes=[layout.envs_per_shard] * layout.stages,
        execute_steps=int(cfg.model.execute_steps),
        group_size=int(cfg.env.group_size),
        global_env_offset=worker_index * layout.envs_per_worker,
        total_envs=total_envs,
        device=device,
        seed=int(cfg.seed) * 1000 + worker_index,
        store_end_obs=bool(cfg.get("reward", {}).get("needs_end_obs", False)),
        bootstrap_terminations=bool(cfg.algo.bootstrap_terminations),
        schedule=layout.schedule,
        probe_settings=probe_settings(cfg.runtime),
    )


def build_local_workers(
    cfg: DictConfig, spec: ObsSpec, layout: RolloutLayout, weights: dict
) -> list[RolloutWorker]:
    from rl_post.models.factory import build_policy

    device = rollout_device(cfg.runtime)
    workers = []
    for w in range(layout.num_workers):

        def factory(stage: int, w: int = w) -> LocalEnvHandle:
            return LocalEnvHandle(
                EnvShard(cfg.env, layout.envs_per_shard, layout.shard_seed_offset(w, stage))
            )

        policy = build_policy(cfg.model, spec)
        policy.load_state_dict(weights)
        workers.append(_make_worker(policy, factory, layout, w, int(cfg.env.num_envs), cfg, device))
    return workers


class RolloutActor:
    """Ray shell over RolloutWorker: builds its policy and its EnvWorker actors in its own process."""

    def __init__(
        self, cfg_dict: dict, spec: ObsSpec, layout: RolloutLayout, worker_index: int, weights: dict
    ):
        from rl_post.models.factory import build_policy

        torch.set_num_threads(max(1, int(cfg_dict["runtime"]["torch_threads"])))
        cfg = OmegaConf.create(cfg_dict)
        placement = cfg.runtime.placement
        factory: Any
        if env_shards_in_process(cfg.runtime, cfg.env):

            def factory(stage: int) -> LocalEnvHandle:
                offset = layout.shard_seed_offset(worker_index, stage)
                return LocalEnvHandle(EnvShard(cfg.env, layout.envs_per_shard, offset))

        else:
            env_actor = env_worker_actor_class(
                float(placement.env_worker_num_cpus), float(placement.env_worker_num_gpus)
            )

            def factory(stage: int) -> RayEnvHandle:
                offset = layout.shard_seed_offset(worker_index, stage)
                return RayEnvHandle(env_actor.remote(cfg.env, layout.envs_per_shard, offset))

        policy = build_policy(cfg.model, spec)
        policy.load_state_dict(weights)
        device = rollout_device(cfg.runtime)
        self.worker = _make_worker(
            policy, factory, layout, worker_index, int(cfg.env.num_envs), cfg, device
        )

    def collect_segments(self, num_steps: int, resets: list[bool]) -> Any:
        return self.worker.collect_segments(num_steps, resets)

    def set_weights(self, version: int, state: dict) -> int:
        return self.worker.set_weights(version, state)

    def state(self) -> dict:
        return self.worker.state()

    def load_state(self, state: dict) -> None:
        self.worker.load_state(state)

    def pop_events(self) -> list[str]:
        return self.worker.pop_events()

    def pipeline_report(self) -> dict:
        return self.worker.pipeline_report()

    def ready(self) -> bool:
        return all(shard.wait(shard.submit("ping")) for shard in self.worker.shards)

    def env_actor_ids(self) -> list[Any]:
        """EnvWorker actors (runtime.placement.env_shards=actor); empty for in-process shards."""
        return [shard.actor for shard in self.worker.shards if isinstance(shard, RayEnvHandle)]

    def env_process_ids(self) -> list[int]:
        """The CPU backend's env processes of in-process shards."""
        return [
            pid
            for shard in self.worker.shards
            if isinstance(shard, LocalEnvHandle)
            for pid in shard.shard.worker_pids()
        ]

    def close(self) -> None:
        self.worker.close()


def init_ray(runtime_cfg: DictConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    ray_cfg = runtime_cfg.ray
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = {
        "include_dashboard": bool(ray_cfg.include_dashboard),
        "log_to_driver": bool(ray_cfg.log_to_driver),
        "ignore_reinit_error": True,
    }
    if ray_cfg.address:
        kwargs["address"] = str(ray_cfg.address)
    else:
        kwargs["num_cpus"] = (
            int(ray_cfg.num_cpus) if ray_cfg.num_cpus else max(2, os.cpu_count() or 2)
        )
    # The package must be importable in every worker process, including those Ray starts itself.
    kwargs["runtime_env"] = {
        "env_vars": {
            "PYTHONPATH": _package_root(),
            "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        }
    }
    ray.init(**kwargs)


def _package_root() -> str:
    import rl_post

    root = os.path.dirname(os.path.dirname(os.path.abspath(rl_post.__file__)))
    existing = os.environ.get("PYTHONPATH", "")
    return f"{root}:{existing}" if existing else root


def build_ray_actors(
    cfg: DictConfig, spec: ObsSpec, layout: RolloutLayout, weights: dict
) -> list[Any]:
    import ray

    placement = cfg.runtime.placement
    actor_cls = ray.remote(
        num_cpus=float(placement.rollout_worker_num_cpus),
        num_gpus=float(placement.rollout_worker_num_gpus),
        max_concurrency=2,
    )(RolloutActor)
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    weights_ref = ray.put(weights)
    return [
        actor_cls.remote(cfg_dict, spec, layout, w, weights_ref) for w in range(layout.num_workers)
    ]


def build_learner(policy: torch.nn.Module, cfg: DictConfig, spec: ObsSpec) -> Any:
    """One in-process DeepSpeed rank, or a group of Ray ranks in one torch.distributed group."""
    num_ranks = int(cfg.learner.num_ranks)
    if num_ranks <= 1:
        from rl_post.learner.learner import Learner

        return Learner(policy, cfg.algo, cfg.learner)
    from rl_post.learner.group import LearnerGroup

    init_ray(cfg.runtime)
    weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    return LearnerGroup(
        policy_factory=_PolicyFactory(model_cfg, spec, weights),
        algo_cfg=OmegaConf.to_container(cfg.algo, resolve=True),
        learner_cfg=OmegaConf.to_container(cfg.learner, resolve=True),
        num_ranks=num_ranks,
    )


class _PolicyFactory:
    """Picklable recipe for the policy each learner rank builds in its own process."""

    def __init__(self, model_cfg: dict, spec: ObsSpec, weights: dict):
        self.model_cfg, self.spec, self.weights = model_cfg, spec, weights

    def __call__(self) -> torch.nn.Module:
        from rl_post.models.factory import build_policy

        policy = build_policy(OmegaConf.create(self.model_cfg), self.spec)
        policy.load_state_dict(self.weights)
        return policy

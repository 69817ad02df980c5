"""Several learner ranks as Ray actors in one torch.distributed group, or one rank in-process.

Each actor is a thin shell over `Learner`. The driver puts the whole batch in the object store
once; every rank reads it and trains on its slice of each global minibatch (minibatch.py), so the
result matches a single rank. Rank 0 answers for the group (stats, published weights).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rl_post.config import ConfigError
from rl_post.learner.distributed import find_free_port
from rl_post.learner.learner import Learner, LossFn

PolicyFactory = Callable[[], nn.Module]


class LearnerActor:
    """Ray actor body: created empty, then `setup` joins the process group as `rank` and builds
    the Learner (two steps because the others must learn rank 0's address first)."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size
        self.learner: Learner | None = None

    def rendezvous_address(self) -> tuple[str, int]:
        import ray

        address = ray.util.get_node_ip_address()
        return address, find_free_port(address)

    def setup(
        self,
        policy_factory: PolicyFactory,
        algo_cfg: Mapping[str, Any],
        learner_cfg: Mapping[str, Any],
        master_addr: str,
        master_port: int,
        loss_fn: LossFn | None = None,
    ) -> float:
        # Each actor sees only its own GPU (Ray sets CUDA_VISIBLE_DEVICES), hence LOCAL_RANK 0.
        os.environ.update(
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK="0",
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
        )
        self.learner = Learner(
            policy_factory(), algo_cfg, learner_cfg, self.rank, self.world_size, loss_fn=loss_fn
        )
        return self.learner.engine_init_seconds

    def _learner(self) -> Learner:
        if self.learner is None:
            raise RuntimeError("LearnerActor.setup must run before any other call")
        return self.learner

    def update(self, batch: dict[str, Any], policy_lr_scale: float = 1.0) -> dict[str, float]:
        return self._learner().update(batch, policy_lr_scale)

    def policy_state(self, full: bool = False) -> dict[str, torch.Tensor] | None:
        state = self._learner().policy_state(full)  # collective under ZeRO-3: every rank calls it
        return state if self.rank == 0 else None

    def save(self, path: str) -> None:
        self._learner().save(path)

    def load(self, path: str) -> None:
        self._learner().load(path)


def _resources(learner_cfg: Mapping[str, Any]) -> dict[str, float]:
    gpus = learner_cfg.get("gpus_per_rank", "auto")
    if gpus == "auto":
        gpus = 1 if torch.cuda.is_available() else 0
    return {"num_cpus": float(learner_cfg.get("cpus_per_rank", 1)), "num_gpus": float(gpus)}


class LearnerGroup:
    """`num_ranks` data-parallel learner ranks behind one object (in-process when 1)."""

    def __init__(
        self,
        policy_factory: PolicyFactory,
        algo_cfg: Mapping[str, Any],
        learner_cfg: Mapping[str, Any],
        num_ranks: int | None = None,
        loss_fn: LossFn | None = None,
    ):
        self.num_ranks = int(num_ranks if num_ranks is not None else learner_cfg["num_ranks"])
        if self.num_ranks < 1:
            raise ConfigError(f"learner.num_ranks must be >= 1; got {self.num_ranks}")
        self._local: Learner | None = None
        self._actors: list[Any] = []
        self._init_seconds: list[float] = []
        if self.num_ranks == 1:
            self._local = Learner(policy_factory(), algo_cfg, learner_cfg, loss_fn=loss_fn)
            return
        import ray

        if not ray.is_initialized():
            ray.init()
        remote_cls = ray.remote(**_resources(learner_cfg))(LearnerActor)
        self._actors = [remote_cls.remote(r, self.num_ranks) for r in range(self.num_ranks)]
        address, port = ray.get(self._actors[0].rendezvous_address.remote())
        # setup blocks until every rank has joined the process group, so start all at once
        self._init_seconds = self._all(
            "setup", policy_factory, algo_cfg, learner_cfg, address, port, loss_fn
        )

    def _all(self, method: str, *args: Any) -> list[Any]:
        import ray

        return ray.get([getattr(actor, method).remote(*args) for actor in self._actors])

    def update(self, batch: dict[str, Any], policy_lr_scale: float = 1.0) -> dict[str, float]:
        if self._local is not None:
            return self._local.update(batch, policy_lr_scale)
        import ray

        batch_ref = ray.put(batch)  # one copy in the object store, read by every rank
        return self._all("update", batch_ref, policy_lr_scale)[0]

    def policy_state(self, full: bool = False) -> dict[str, torch.Tensor]:
        if self._local is not None:
            return self._local.policy_state(full)
        return self._all("policy_state", full)[0]

    def policy_state_ref(self) -> Any:
        """Object ref to rank 0's published weights, for rollout workers to fetch directly
        (the driver never copies them). Waits until every rank has answered."""
        if self._local is not None:
            import ray

            return ray.put(self._local.policy_state())
        import ray

        refs = [actor.policy_state.remote() for actor in self._actors]
        ray.wait(refs, num_returns=len(refs))
        return refs[0]

    def save(self, path: str | Path) -> None:
        if self._local is not None:
            self._local.save(path)
        else:
            self._all("save", str(path))

    def load(self, path: str | Path) -> None:
        if self._local is not None:
            self._local.load(path)
        else:
            self._all("load", str(path))

    def engine_init_seconds(self) -> float:
        if self._local is not None:
            return self._local.engine_init_seconds
        return max(self._init_seconds)

    def shutdown(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []

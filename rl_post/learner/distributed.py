"""torch.distributed setup for the learner: one call that works in a plain process and in a Ray actor.

DeepSpeed reads RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT from the environment; a single
process started without a launcher has none of them, so we fill in defaults (a free local port)
rather than asking every caller to export them.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import warnings

import torch
import torch.distributed as dist

from rl_post.config import ConfigError

DIST_BACKENDS = ("gloo", "nccl")


def find_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def resolve_backend(requested: str) -> str:
    """`auto` picks NCCL when CUDA is usable and gloo otherwise (gloo is the only CPU backend)."""
    if requested == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if requested not in DIST_BACKENDS:
        raise ConfigError(
            f"learner.dist_backend '{requested}' is not supported; valid choices: auto, "
            + ", ".join(DIST_BACKENDS)
        )
    if requested == "nccl" and not torch.cuda.is_available():
        raise ConfigError("learner.dist_backend=nccl needs a CUDA GPU; use gloo or auto on CPU")
    return requested


def set_env_defaults(rank: int, world_size: int, master_addr: str, master_port: int | None) -> None:
    """Fill the launcher variables DeepSpeed expects, keeping any the caller already exported."""
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("WORLD_SIZE", str(world_size))
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", master_addr)
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(master_port or find_free_port(master_addr))


def quiet_deepspeed(level_name: str) -> None:
    """DeepSpeed logs every engine step at INFO; keep its logger at the configured level."""
    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        raise ConfigError(
            f"learner.log_level '{level_name}' is not a logging level; "
            "valid choices: debug, info, warning, error"
        )
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(level)
    # ZeRO 1-3 call torch collectives that torch 2.13 marks deprecated, and the warning is
    # re-emitted on every step; it is DeepSpeed's to fix, not actionable here.
    warnings.filterwarnings(
        "ignore",
        message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated",
        category=FutureWarning,
    )


def ensure_process_group(backend: str, rank: int, world_size: int, master_addr: str) -> None:
    """Join (or reuse) the default process group with the expected rank and size."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() != world_size or dist.get_rank() != rank:
            raise RuntimeError(
                f"a process group (rank {dist.get_rank()} of {dist.get_world_size()}) already "
                f"exists in this process but the learner expects rank {rank} of {world_size}; "
                "use one learner layout per process"
            )
        # DeepSpeed checks the launcher variables even when the group exists; a caller (or a
        # test) may have cleared them since the group was made.
        os.environ.setdefault("RANK", str(rank))
        os.environ.setdefault("WORLD_SIZE", str(world_size))
        os.environ.setdefault("LOCAL_RANK", "0")
        return
    set_env_defaults(rank, world_size, master_addr, None)
    import deepspeed

    _skip_shm_comm_build()

    deepspeed.init_distributed(
        dist_backend=backend,
        auto_mpi_discovery=False,
        verbose=False,
        rank=rank,
        world_size=world_size,
    )


def _skip_shm_comm_build() -> None:
    """DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce op on first use (~55 s on
    2 cores, once per machine) after probing every op builder (seconds, and linker errors on
    stderr). Only `inference_all_reduce` uses that op; training collectives go through the torch
    process group, so we tell DeepSpeed the op is unavailable, which is its own fallback path."""
    # importlib, not `import deepspeed.comm.torch as m`: the package re-exports the real `torch`
    # under that attribute name, so the `as` form would hand back torch itself.
    ds_torch_comm = importlib.import_module("deepspeed.comm.torch")
    ds_torch_comm.build_shm_op = lambda: None

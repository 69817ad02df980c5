"""`rl-post` console script: one entry point, one subcommand per job, Hydra configs underneath.

Usage: rl-post <command> [hydra overrides...]   e.g.  rl-post train env=pickcube algo=grpo
       rl-post <command> --cfg                   prints the resolved config and exits
"""

from __future__ import annotations

import importlib
import sys

from omegaconf import OmegaConf

from rl_post.config import ConfigError, load_config
from rl_post.console import Console

# Long commands say what they do before importing torch & co (seconds on a busy machine).
LOADING = {
    "train": "loading torch, DeepSpeed and Ray",
    "sft": "loading torch",
    "eval": "loading torch and ManiSkill",
    "collect-demos": "loading ManiSkill and its motion planners",
    "reward-train": "loading torch and ManiSkill",
}

# command -> (config name, "module:function" taking the composed DictConfig)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "rl_post.trainer:train_main"),
    "diagnose": ("diagnose", "rl_post.diagnose:diagnose_main"),
    "proof": ("proof", "rl_post.proof.run:proof_main"),
    "bench": ("bench_train", "rl_post.bench.throughput:bench_train_main"),
    "bench-train": ("bench_train", "rl_post.bench.throughput:bench_train_main"),
    "bench-sim": ("bench", "rl_post.bench.sim:bench_sim_main"),
    "sweep": ("sweep", "rl_post.bench.sweep:sweep_main"),
    "sweep-gpu": ("sweep_gpu", "rl_post.bench.sweep:sweep_main"),
    "collect-demos": ("collect", "rl_post.sft.collect:collect_main"),
    "sft": ("sft", "rl_post.sft.train:sft_main"),
    "eval": ("eval", "rl_post.eval.run:eval_main"),
    "reward-train": ("reward_train", "rl_post.rewards.train:reward_train_main"),
}


def _usage() -> str:
    names = "|".join(sorted(COMMANDS))
    return f"usage: rl-post {{{names}}} [key=value ...] [--cfg]"


# What a resumed run may change: its recorded config is replayed, save the iteration budget.
RESUME_MAY_CHANGE: tuple[str, ...] = ("resume", "train.iterations")


def check_resume_overrides(overrides: list[str]) -> None:
    """`train resume=<run>` replays the run's recorded config, so any other override would be
    silently ignored: name it and the alternatives instead."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if "resume" not in keys:
        return
    ignored = [o for o, k in zip(overrides, keys, strict=True) if k not in RESUME_MAY_CHANGE]
    if ignored:
        raise ConfigError(
            "resume= continues a run with its recorded config (<run>/config.yaml); only "
            f"train.iterations may change, so {' '.join(ignored)} would be ignored. Drop them, or "
            "start a new run from the run's checkpoint: rl-post train <overrides> "
            "init_from=<run>/checkpoints/<iter_NNNNNN>/policy"
        )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0 if args else 2
    command, overrides = args[0], args[1:]
    # Two-word commands (`bench sim`, `bench train`, `reward train`) are spelt with a dash inside.
    if overrides and f"{command}-{overrides[0]}" in COMMANDS:
        command, overrides = f"{command}-{overrides[0]}", overrides[1:]
    # `rl-post proof <recipe>`: a bare first word names the recipe
    if command == "proof" and overrides and "=" not in overrides[0] and overrides[0] != "--cfg":
        overrides = [f"recipe={overrides[0]}", *overrides[1:]]
    if command not in COMMANDS:
        print(f"rl-post: unknown command '{command}'. {_usage()}", file=sys.stderr)
        return 2
    show_cfg = "--cfg" in overrides
    overrides = [o for o in overrides if o != "--cfg"]
    config_name, target = COMMANDS[command]
    try:
        if command == "train":
            check_resume_overrides(overrides)
        cfg = load_config(config_name, overrides)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg, resolve=True))
            return 0
        if command in LOADING:
            Console().stage(f"rl-post {command}: config composed; {LOADING[command]}")
        module_name, func_name = target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        result = func(cfg)
    except ConfigError as exc:
        print(f"rl-post {command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rl-post {command}: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())

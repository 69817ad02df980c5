"""The env a policy checkpoint was trained for: recorded at save time, checked and reused at load.

meta.json["env"] holds the settings that define the task and the number a policy scores on it
(task, obs and control mode, cameras, image size, reward mode, terminations, episode length).
`rl-post eval` and `init_from` start from these values; whatever the user chose (env=, env.<key>=,
a preset's env keys) wins. A policy asked to run on another task / obs mode / control mode than
it was trained for fails unless the user allows it explicitly (allow_task_mismatch=true).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec

META_ENV_KEY = "env"
# Recorded in every checkpoint; eval and init_from default to them.
RECORDED_ENV_KEYS = (
    "tasks",
    "obs_mode",
    "cameras",
    "image_size",
    "control_mode",
    "reward_mode",
    "max_episode_steps",
    "ignore_terminations",
)
# Keys that define what the policy sees and does: a difference is an error unless allowed.
INTERFACE_KEYS = ("tasks", "obs_mode", "control_mode")
RGB_INTERFACE_KEYS = ("cameras", "image_size")  # only when the policy sees images
MISMATCH_FLAG = "allow_task_mismatch"


def env_record(env_cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """The recorded env settings of an env config (plain JSON values)."""
    raw = (
        OmegaConf.to_container(env_cfg, resolve=True)
        if isinstance(env_cfg, DictConfig)
        else dict(env_cfg)
    )
    record = {k: raw[k] for k in RECORDED_ENV_KEYS if k in raw}
    for key in ("tasks", "cameras", "image_size"):
        if key in record:
            record[key] = list(record[key])
    return record


def recorded_env(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The env a checkpoint's meta records, or None for checkpoints written before it was kept."""
    value = meta.get(META_ENV_KEY)
    return dict(value) if isinstance(value, Mapping) else None


def apply_recorded_env(
    env_cfg: DictConfig, recorded: Mapping[str, Any], explicit: Iterable[str]
) -> dict[str, Any]:
    """Set every recorded key the user did not choose; returns {key: value} of what was taken."""
    chosen = set(explicit)
    taken = {
        k: v
        for k, v in recorded.items()
        if k in RECORDED_ENV_KEYS and k not in chosen and k in env_cfg
    }
    with open_dict(env_cfg):
        for key, value in taken.items():
            env_cfg[key] = value
    return {k: v for k, v in taken.items()}


def _interface_keys(record: Mapping[str, Any]) -> tuple[str, ...]:
    rgb = str(record.get("obs_mode", "state")) != "state"
    return INTERFACE_KEYS + (RGB_INTERFACE_KEYS if rgb else ())


def env_mismatches(
    recorded: Mapping[str, Any], env_cfg: Mapping[str, Any] | DictConfig
) -> list[str]:
    """Human-readable differences between the checkpoint's interface settings and the env's.

    Tasks differ when the env runs a task the checkpoint was not trained on (a subset of a
    multi-task checkpoint's tasks is fine).
    """
    current = env_record(env_cfg)
    problems = []
    for key in _interface_keys(recorded):
        if key not in recorded or key not in current:
            continue
        saved, now = recorded[key], current[key]
        if key == "tasks":
            extra = [t for t in now if t not in saved]
            if extra:
                problems.append(f"tasks: checkpoint {list(saved)} vs env {list(now)}")
        elif saved != now:
            problems.append(f"{key}: checkpoint {saved} vs env {now}")
    return problems


def bound_mismatches(saved: ObsSpec, spec: ObsSpec) -> list[str]:
    """Action normalization bounds the checkpoint clips to vs the env's (control mode ranges)."""
    if not saved.action_low or not spec.action_low:
        return []
    if tuple(saved.action_low) != tuple(spec.action_low) or tuple(saved.action_high) != tuple(
        spec.action_high
    ):
        return [
            f"action bounds: checkpoint [{list(saved.action_low)}, {list(saved.action_high)}] vs "
            f"env [{list(spec.action_low)}, {list(spec.action_high)}]"
        ]
    return []


def check_mismatch(path: Any, problems: list[str], allow: bool) -> str | None:
    """Raise a ConfigError naming every difference and the way out; when allowed, return the
    warning for the caller to show (None when nothing differs)."""
    if not problems:
        return None
    detail = "; ".join(problems)
    if allow:
        return (
            f"WARNING: checkpoint {path} was trained for another env ({detail}); running it "
            f"anyway because {MISMATCH_FLAG}=true"
        )
    raise ConfigError(
        f"checkpoint {path} was trained for another env ({detail}); drop the env overrides to "
        f"use the checkpoint's own settings, or pass {MISMATCH_FLAG}=true to run it anyway "
        "(transfer experiments)"
    )


def describe(taken: Mapping[str, Any]) -> str:
    """'tasks=[PushCube-v1], reward_mode=dense' for the start-up summary and reports."""
    return ", ".join(f"{k}={v}" for k, v in taken.items()) or "nothing (all given)"


def env_from_checkpoint(
    cfg: DictConfig, path: Any, meta: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """Fill cfg.env from a checkpoint's recorded env (keys the user did not choose), then check
    the interface. Returns (the settings taken, None when the checkpoint records no env; a
    warning or note to show, or None)."""
    from rl_post.config import EXPLICIT_ENV_KEY

    recorded = recorded_env(meta)
    if recorded is None:
        return None, (
            f"NOTE: checkpoint {path} records no env settings (written before rl_post kept "
            "them): the env config is used as given and its task cannot be checked"
        )
    taken = apply_recorded_env(cfg.env, recorded, cfg.get(EXPLICIT_ENV_KEY) or [])
    allow = bool(cfg.get(MISMATCH_FLAG, False))
    return taken, check_mismatch(path, env_mismatches(recorded, cfg.env), allow)

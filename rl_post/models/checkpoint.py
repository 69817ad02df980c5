"""Policy checkpoint: one directory, readable without the training run that wrote it.

  meta.json           format name + version, model kind/name, the env ObsSpec, the env settings it
                      was trained for (models/checkpoint_env.py), the run that wrote it, extra meta
  model_config.json   the full parsed model config (every default spelled out)
  model.safetensors   weights (normalization buffers excluded)
  normalization.json  state mean/std, action normalization bounds, env clip bounds (null = none)

meta.json is written last, so a directory without it is an interrupted save.
A training checkpoint (`<run>/checkpoints/iter_NNNNNN/`) holds a policy checkpoint in its
`policy/` subdirectory; readers accept either directory.
Loading may use a different model config than the one saved (`expect_config`) as long as the
architecture keys agree: sampler, noise level, temperature, denoising steps, execute_steps and
value-head options are runtime choices. A missing value head or noise head starts fresh (an SFT
checkpoint without a critic can seed PPO).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from rl_post.checkpoint_dir import (
    CONFIG_FILE,
    META_FILE,
    NORMALIZATION_FILE,
    WEIGHTS_FILE,
    require_file,
    write_checkpoint_dir,
)
from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.base_policy import VALUE_HEAD_PREFIX
from rl_post.models.config import ModelConfig, parse_model_config
from rl_post.models.factory import AnyPolicy, build_policy
from rl_post.models.normalization import STAT_KEYS
from rl_post.models.vla.config import VLA_KINDS

log = logging.getLogger(__name__)

FORMAT_NAME = "rl_post.policy"
FORMAT_VERSION = 1
NORMALIZER_PREFIX = "normalizer."
# Parts that may be absent from a checkpoint and then start from their fresh initialisation.
FRESH_INIT_PREFIXES = (VALUE_HEAD_PREFIX, "noise_head.")
# The critic's shape: when it differs from the checkpoint's, the critic starts fresh (an SFT
# checkpoint's value head was never trained, so nothing of value is lost).
CRITIC_KEYS = ("value_input", "value_hidden", "value_layers")
# Keys that fix parameter shapes or their meaning; they must match between checkpoint and config.
ARCHITECTURE_KEYS = (
    "kind",
    "action_horizon",
    "d_model",
    "num_heads",
    "backbone_layers",
    "mlp_ratio",
    "state_hidden",
    "vision",
    "language",
    "expert_layers",
    "expert_d_model",
    "noise_head_hidden",
    "num_bins",
    "hidden_sizes",
    "activation",
    "policy_state_drop",
)


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    meta: dict[str, Any]
    model_config: ModelConfig
    spec: ObsSpec


def _stats_to_json(stats: dict[str, torch.Tensor]) -> dict[str, list[float | None]]:
    return {
        k: [float(x) if math.isfinite(x) else None for x in v.cpu().tolist()]
        for k, v in stats.items()
    }


def _stats_from_json(raw: dict[str, list[float | None]], key_sign: dict[str, float]) -> dict:
    stats = {}
    for key, values in raw.items():
        fill = key_sign.get(key, math.nan)
        stats[key] = torch.tensor([fill if v is None else v for v in values], dtype=torch.float32)
    return stats


def save_policy(
    policy: AnyPolicy,
    path: str | os.PathLike,
    extra_meta: dict[str, Any] | None = None,
    env: Any = None,
    run: str | None = None,
) -> Path:
    """Write `policy` to directory `path` (created; existing checkpoint files are replaced).

    SmolVLA / pi0 policies are written in LeRobot's pretrained_model layout (their env record
    is not written yet: LeRobot folders carry no env settings).
    env: the env config the policy was trained for (its task-defining settings are recorded, so
    eval and init_from can default to them and refuse another task); run: the run's name.
    """
    from rl_post.models.checkpoint_env import META_ENV_KEY, env_record

    if getattr(policy, "kind", None) in VLA_KINDS:
        from rl_post.models.vla.lerobot_io import save_lerobot_policy

        return save_lerobot_policy(policy, path, extra_meta)
    weights = {k: v for k, v in policy.state_dict().items() if not k.startswith(NORMALIZER_PREFIX)}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": policy.kind,
        "name": policy.config.name,
        "obs_spec": dataclasses.asdict(policy.spec),
        "extra": extra_meta or {},
    }
    if env is not None:
        meta[META_ENV_KEY] = env_record(env)
    if run is not None:
        meta["run"] = str(run)
    return write_checkpoint_dir(
        path,
        weights,
        _stats_to_json(policy.normalization_stats()),
        policy.config.to_dict(),
        meta,
        allow_nan=False,
    )


TRAINING_CHECKPOINT_POLICY_DIR = "policy"  # <run>/checkpoints/iter_NNNNNN/policy


def _policy_dir(folder: Path) -> Path:
    """`folder`, or its policy/ subdirectory when `folder` is a training checkpoint."""
    nested = folder / TRAINING_CHECKPOINT_POLICY_DIR
    if not (folder / META_FILE).exists() and (nested / META_FILE).is_file():
        return nested
    return folder


def _require_file(folder: Path, name: str) -> Path:
    return require_file(
        folder, name, "policy checkpoint", "re-save it with rl_post.models.save_policy"
    )


def read_checkpoint(path: str | os.PathLike) -> CheckpointInfo:
    """Read and check meta + config (no weights)."""
    from rl_post.models.vla.lerobot_io import lerobot_dir

    lerobot = lerobot_dir(path)
    if lerobot is not None:
        from rl_post.models.vla.lerobot_io import (
            read_lerobot_folder,
            saved_model_config,
            saved_spec,
        )

        folder_info = read_lerobot_folder(lerobot)
        meta = folder_info.rl_post or {"format": "lerobot", "kind": folder_info.kind}
        return CheckpointInfo(
            lerobot, meta, saved_model_config(folder_info), saved_spec(folder_info)
        )
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(
            f"policy checkpoint directory {folder} does not exist; pass the directory written by "
            "save_policy (it holds meta.json, model_config.json, model.safetensors)"
        )
    folder = _policy_dir(folder)
    try:
        meta = json.loads(_require_file(folder, META_FILE).read_text())
        raw_cfg = json.loads(_require_file(folder, CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"policy checkpoint {folder} has a corrupt JSON file ({exc})") from None
    if meta.get("format") != FORMAT_NAME:
        raise ConfigError(
            f"{folder} is not an rl_post policy checkpoint (format {meta.get('format')!r}, "
            f"expected {FORMAT_NAME!r}); point to a directory written by save_policy"
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(
            f"policy checkpoint {folder} has format version {version}, but this rl_post reads "
            f"version {FORMAT_VERSION}; load it with the rl_post release that wrote it, or "
            "re-export it with this one"
        )
    spec_raw = meta["obs_spec"]
    spec = ObsSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_raw.items()})
    return CheckpointInfo(folder, meta, parse_model_config(raw_cfg), spec)


def _check_architecture(info: CheckpointInfo, cfg: ModelConfig) -> None:
    saved = info.model_config
    if saved.kind != cfg.kind:
        raise ConfigError(
            f"checkpoint {info.path} holds a '{saved.kind}' policy ({saved.name}) but the model "
            f"config '{cfg.name}' is kind '{cfg.kind}'; choose a model config of kind "
            f"'{saved.kind}' (e.g. model={saved.name}) or a {cfg.kind} checkpoint"
        )
    differ = [k for k in ARCHITECTURE_KEYS if getattr(saved, k) != getattr(cfg, k)]
    if differ:
        detail = ", ".join(
            f"{k}: checkpoint {getattr(saved, k)} vs config {getattr(cfg, k)}" for k in differ
        )
        raise ConfigError(
            f"checkpoint {info.path} ({saved.name}) does not match model config '{cfg.name}' "
            f"({detail}); use model={saved.name} or set these keys to the checkpoint's values"
        )


def check_architecture(info: CheckpointInfo, model_cfg: Any) -> None:
    """Fail (before anything starts) if `model_cfg` cannot hold the checkpoint's weights."""
    _check_architecture(info, parse_model_config(model_cfg))


def trained_for(info: CheckpointInfo) -> str:
    """' (trained on PushCube-v1, state, pd_ee_delta_pose)' or '' when the meta does not say."""
    from rl_post.models.checkpoint_env import recorded_env

    env = recorded_env(info.meta)
    if not env:
        return ""
    tasks = "+".join(env.get("tasks", [])) or "?"
    return f" (trained on {tasks}, {env.get('obs_mode', '?')}, {env.get('control_mode', '?')})"


def check_checkpoint_compatible(
    path: str | os.PathLike, model_cfg: Any, spec: ObsSpec, allow_bound_mismatch: bool = False
) -> str | None:
    """Fail early (before workers start) if the checkpoint cannot serve this config and env.

    Returns a warning when the action bounds differ and `allow_bound_mismatch` is set."""
    from rl_post.models.checkpoint_env import bound_mismatches, check_mismatch
    from rl_post.models.vla.lerobot_io import check_lerobot_config, lerobot_dir, read_lerobot_folder

    if lerobot_dir(path) is not None:
        cfg = parse_model_config(model_cfg)
        if cfg.kind not in VLA_KINDS:
            raise ConfigError(
                f"{path} is a LeRobot policy folder but model '{cfg.name}' is kind '{cfg.kind}'; "
                f"use model={read_lerobot_folder(path).kind}"
            )
        check_lerobot_config(read_lerobot_folder(path), cfg, spec)
        return None
    info = read_checkpoint(path)
    cfg = parse_model_config(model_cfg)
    _check_architecture(info, cfg)
    saved = info.spec
    problems = []
    if saved.state_dim != spec.state_dim:
        problems.append(f"state_dim {saved.state_dim} vs env {spec.state_dim}")
    if saved.action_dim != spec.action_dim:
        problems.append(f"action_dim {saved.action_dim} vs env {spec.action_dim}")
    if len(saved.cameras) != len(spec.cameras):
        problems.append(f"cameras {list(saved.cameras)} vs env {list(spec.cameras)}")
    if problems:
        raise ConfigError(
            f"checkpoint {info.path}{trained_for(info)} was trained for a different env interface ("
            f"{'; '.join(problems)}); use the env settings (task, control_mode, obs_mode, "
            "cameras) the checkpoint was trained with"
        )
    return check_mismatch(info.path, bound_mismatches(saved, spec), allow_bound_mismatch)


def load_policy(
    path: str | os.PathLike,
    expect_config: Any = None,
    device: str | torch.device = "cpu",
    spec: ObsSpec | None = None,
    allow_bound_mismatch: bool = False,
) -> AnyPolicy:
    """Rebuild a saved policy.

    expect_config: build this model config instead of the saved one (architecture must match;
    runtime keys such as the sampler come from it). spec: the env's ObsSpec, checked against the
    checkpoint's (state/action dims, cameras, action bounds unless allow_bound_mismatch) and used
    for the rebuilt policy.
    """
    from rl_post.models.vla.lerobot_io import lerobot_dir, load_lerobot_policy

    if lerobot_dir(path) is not None:  # SmolVLA / pi0 in LeRobot's layout (strict)
        return load_lerobot_policy(path, expect_config, spec, device)
    info = read_checkpoint(path)
    cfg = info.model_config
    if expect_config is not None:
        cfg = parse_model_config(expect_config)
        _check_architecture(info, cfg)
    if spec is not None:
        check_checkpoint_compatible(path, cfg, spec, allow_bound_mismatch)
    policy = build_policy(cfg, spec if spec is not None else info.spec)
    weights = load_file(str(_require_file(info.path, WEIGHTS_FILE)))
    if any(getattr(info.model_config, k) != getattr(cfg, k) for k in CRITIC_KEYS):
        weights = {k: v for k, v in weights.items() if not k.startswith(VALUE_HEAD_PREFIX)}
    try:
        missing, unexpected = policy.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even with strict=False
        raise ConfigError(
            f"checkpoint {info.path} weights do not fit model '{cfg.name}' ({exc}); use the "
            "model config the checkpoint was saved with"
        ) from None
    missing = [k for k in missing if not k.startswith(NORMALIZER_PREFIX)]
    fresh = [k for k in missing if k.startswith(FRESH_INIT_PREFIXES)]
    bad_missing = [k for k in missing if k not in fresh]
    bad_unexpected = [k for k in unexpected if not k.startswith(VALUE_HEAD_PREFIX)]
    if bad_missing or bad_unexpected:
        raise ConfigError(
            f"checkpoint {info.path} weights do not fit model '{cfg.name}' (missing "
            f"{bad_missing[:5]}, unexpected {bad_unexpected[:5]}); re-save the checkpoint or "
            "use the model config it was saved with"
        )
    if fresh:
        parts = sorted({k.split(".")[0] for k in fresh})
        log.warning(
            "checkpoint %s has no %s weights; they start freshly initialised", info.path, parts
        )
    raw_stats = json.loads(_require_file(info.path, NORMALIZATION_FILE).read_text())
    unbounded = {"env_low": -math.inf, "env_high": math.inf}
    stats = _stats_from_json(raw_stats, unbounded)
    policy.set_normalization({k: v for k, v in stats.items() if k in STAT_KEYS})
    return policy.to(device)

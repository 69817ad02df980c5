"""LeRobot `pretrained_model/` folders: strict loading into, and saving from, the VLA policies.

The layout, as LeRobot 0.4.4 writes it (lerobot/policies/pretrained.py, configs/policies.py,
processor/pipeline.py):
  config.json                      draccus dump of the policy config ("type": "smolvla" | "pi0")
  model.safetensors                the policy's state_dict (keys "model.<...>"), tied tensors
                                   stored once (safetensors.torch.save_model)
  policy_preprocessor.json         processor steps; the `normalizer_processor` step's stats in
  policy_preprocessor_step_<i>_normalizer_processor.safetensors  ('observation.state.mean', ...)
  policy_postprocessor.json        `unnormalizer_processor` step (action stats) in
  policy_postprocessor_step_0_unnormalizer_processor.safetensors
The tokenizer is only named there (tokenizer_processor's tokenizer_name); rl_post also writes the
tokenizer's files into the folder so the folder is self-contained.
rl_post adds two files LeRobot ignores: rl_heads.safetensors (the RL noise and value heads) and
rl_post.json (format, the full model config, the env ObsSpec; written last: a folder without it
is an interrupted rl_post save, or a plain LeRobot folder).

Loading is strict: every weight of the network must be in model.safetensors with its shape and
nothing else may be there (an error names the keys); config.json must describe the model config's
architecture; the image keys, state and action sizes must fit the env mapping (model.obs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from rl_post.checkpoint_dir import write_json
from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.vla.config import PI0_TOKENIZER_NAME, VLAModelConfig, parse_vla_config
from rl_post.models.vla.inputs import (
    ACTION_KEY,
    IMAGE_PREFIX,
    STATE_KEY,
    check_action_dims,
    input_layout,
)
from rl_post.models.vla.tokenizer import BYTE_TOKENIZER_NAME, has_tokenizer_files

log = logging.getLogger(__name__)

FORMAT_NAME = "rl_post.lerobot_policy"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RL_POST_FILE = "rl_post.json"
HEADS_FILE = "rl_heads.safetensors"
PRE_NAME, POST_NAME = "policy_preprocessor", "policy_postprocessor"
NORMALIZER_STEP, UNNORMALIZER_STEP = "normalizer_processor", "unnormalizer_processor"
TOKENIZER_STEP = "tokenizer_processor"
HEAD_PREFIXES = ("noise_head.", "value_head.")
EMPTY_CAMERA_PREFIX = f"{IMAGE_PREFIX}empty_camera_"
MIGRATION_HINT = (
    "checkpoints from LeRobot < 0.4 keep normalization in the weights; convert them with "
    "LeRobot's `python -m lerobot.processor.migrate_policy_normalization`"
)

# config.json fields that fix the architecture or the input pipeline, mapped to the model config
# (LeRobot's defaults for absent fields, from configuration_smolvla.py / configuration_pi0.py).
COMMON_FIELDS = {
    "chunk_size": ("action_horizon", 50),
    "max_state_dim": ("max_state_dim", 32),
    "max_action_dim": ("max_action_dim", 32),
    "empty_cameras": ("empty_cameras", 0),
    "min_period": ("min_period", 4e-3),
    "max_period": ("max_period", 4.0),
    "tokenizer_max_length": ("tokenizer_max_length", 48),
}
FAMILY_FIELDS = {
    "smolvla": {
        "resize_imgs_with_padding": ("image_size", [512, 512]),
        "vlm_model_name": ("vlm_model_name", "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"),
        "num_vlm_layers": ("num_vlm_layers", 16),
        "num_expert_layers": ("num_expert_layers", -1),
        "self_attn_every_n_layers": ("self_attn_every_n_layers", 2),
        "expert_width_multiplier": ("expert_width_multiplier", 0.75),
        "attention_mode": ("attention_mode", "cross_attn"),
        "pad_language_to": ("pad_language_to", "longest"),
    },
    "pi0": {
        "image_resolution": ("image_size", [224, 224]),
        "paligemma_variant": ("paligemma_variant", "gemma_2b"),
        "action_expert_variant": ("action_expert_variant", "gemma_300m"),
    },
}
# Reference features rl_post does not implement; they must keep LeRobot's default.
UNSUPPORTED_FIELDS = {
    "smolvla": {
        "add_image_special_tokens": False,
        "prefix_length": -1,
        "adapt_to_pi_aloha": False,
        "use_delta_joint_actions_aloha": False,
        "rtc_config": None,
    },
    "pi0": {"rtc_config": None},
}
STEPS_FIELD = {"smolvla": "num_steps", "pi0": "num_inference_steps"}


# ----- reading --------------------------------------------------------------------------------


def lerobot_dir(path: str | os.PathLike) -> Path | None:
    """The LeRobot-layout folder at `path` (or its policy/ subfolder: a training checkpoint)."""
    folder = Path(path)
    for candidate in (folder, folder / "policy"):
        config = candidate / CONFIG_FILE
        if config.is_file() and not (candidate / "meta.json").exists():
            try:
                kind = json.loads(config.read_text()).get("type")
            except (json.JSONDecodeError, AttributeError):
                continue
            if kind is not None:
                return candidate
    return None


def _read_json(file: Path, what: str) -> dict[str, Any]:
    if not file.is_file():
        raise ConfigError(f"{file.parent} has no {file.name} ({what}); {MIGRATION_HINT}")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} does not hold a JSON object")
    return data


@dataclasses.dataclass
class LeRobotFolder:
    path: Path
    config: dict[str, Any]
    rl_post: dict[str, Any] | None

    @property
    def kind(self) -> str:
        return str(self.config.get("type"))

    def features(self, section: str) -> dict[str, dict[str, Any]]:
        return dict(self.config.get(section) or {})


def read_lerobot_folder(path: str | os.PathLike) -> LeRobotFolder:
    folder = lerobot_dir(path)
    if folder is None:
        raise ConfigError(
            f"{path} is not a LeRobot pretrained_model folder (no config.json with a 'type')"
        )
    config = _read_json(folder / CONFIG_FILE, "the LeRobot policy config")
    meta_file = folder / RL_POST_FILE
    meta = _read_json(meta_file, "rl_post metadata") if meta_file.is_file() else None
    if meta is not None and meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{folder} was written by an rl_post with format version "
            f"{meta.get('format_version')}; this one reads {FORMAT_VERSION}"
        )
    return LeRobotFolder(folder, config, meta)


def saved_model_config(folder: LeRobotFolder) -> VLAModelConfig:
    if folder.rl_post is None:
        raise ConfigError(
            f"{folder.path} is a plain LeRobot folder; pass the model config that describes it "
            f"(e.g. rl-post train model={folder.kind} init_from={folder.path})"
        )
    raw = dict(folder.rl_post["model_config"])
    if has_tokenizer_files(
        folder.path
    ):  # rl_post saves the tokenizer: the folder is self-contained
        raw["tokenizer_path"] = str(folder.path)
    return parse_vla_config(raw)


def saved_spec(folder: LeRobotFolder) -> ObsSpec:
    if folder.rl_post is None:
        raise ConfigError(
            f"{folder.path} is a plain LeRobot folder and records no env interface; load it "
            "with the env's ObsSpec (rl-post train ... init_from=<folder> does)"
        )
    raw = folder.rl_post["obs_spec"]
    return ObsSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def check_lerobot_config(folder: LeRobotFolder, cfg: VLAModelConfig, spec: ObsSpec) -> None:
    """Every structural mismatch between a LeRobot folder and (model config, env), at once."""
    source = f"checkpoint {folder.path}"
    if folder.kind != cfg.kind:
        raise ConfigError(
            f"{source} holds a LeRobot '{folder.kind}' policy but the model config '{cfg.name}' "
            f"is kind '{cfg.kind}'; use model={folder.kind}"
        )
    if folder.kind not in FAMILY_FIELDS:
        raise ConfigError(f"{source}: LeRobot policy type '{folder.kind}' is not supported")
    problems = []
    fields = {**COMMON_FIELDS, **FAMILY_FIELDS[folder.kind]}
    for lerobot_key, (ours, default) in fields.items():
        theirs = folder.config.get(lerobot_key, default)
        mine = getattr(cfg, ours)
        if isinstance(mine, tuple):
            mine = list(mine)
        if theirs != mine:
            problems.append(f"{lerobot_key}={theirs!r} but model.{ours}={mine!r}")
    for key, default in UNSUPPORTED_FIELDS[folder.kind].items():
        if folder.config.get(key, default) != default:
            problems.append(f"{key}={folder.config[key]!r} is not supported (only {default!r})")
    mapping = folder.config.get("normalization_mapping") or {}
    for ftype in ("STATE", "ACTION", "VISUAL"):
        theirs = mapping.get(ftype, "IDENTITY" if ftype == "VISUAL" else "MEAN_STD")
        mine = cfg.normalization_mapping.get(ftype, "IDENTITY")
        if theirs != mine:
            problems.append(
                f"normalization_mapping.{ftype}={theirs} but model.normalization_mapping."
                f"{ftype}={mine}"
            )
    layout = input_layout(cfg, spec)
    inputs = folder.features("input_features")
    images = [
        k
        for k, v in inputs.items()
        if v.get("type") == "VISUAL" and not k.startswith(EMPTY_CAMERA_PREFIX)
    ]
    if images != list(layout.image_keys):
        problems.append(
            f"its image keys are {images} but model.obs.cameras gives {list(layout.image_keys)}; "
            "map every checkpoint image key to an env camera, in the checkpoint's order "
            "(model.obs.cameras={<key>: <camera>, ...})"
        )
    state = inputs.get(STATE_KEY)
    if state is None or list(state.get("shape", [])) != [layout.state_dim]:
        shape = None if state is None else state.get("shape")
        problems.append(
            f"its {STATE_KEY} has shape {shape} but model.obs.state_indices selects "
            f"{layout.state_dim} env state entries; select the entries it was trained on"
        )
    if problems:
        raise ConfigError(
            f"{source} does not match model config '{cfg.name}' and the env: " + "; ".join(problems)
        )
    action = folder.features("output_features").get(ACTION_KEY)
    if action is None:
        raise ConfigError(f"{source} has no output feature '{ACTION_KEY}' in config.json")
    check_action_dims(int(action["shape"][0]), spec.action_dim, source)


def _processor_step(
    folder: Path, name: str, registry_name: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, stats) of the processor step `registry_name` in `<name>.json`."""
    pipeline = _read_json(folder / f"{name}.json", f"the LeRobot {name}")
    for step in pipeline.get("steps", []):
        if step.get("registry_name") == registry_name:
            state_file = step.get("state_file")
            stats = load_file(str(folder / state_file)) if state_file else {}
            return step.get("config", {}), stats
    raise ConfigError(f"{folder / (name + '.json')} has no '{registry_name}' step")


def _check_tokenizer(folder: Path, cfg: VLAModelConfig) -> None:
    config, _ = _processor_step(folder, PRE_NAME, TOKENIZER_STEP)
    name = config.get("tokenizer_name")
    if cfg.tokenizer_path is None and name not in (None, BYTE_TOKENIZER_NAME):
        raise ConfigError(
            f"checkpoint {folder} uses the tokenizer '{name}' but model.tokenizer_path is null "
            f"(the byte-level tokenizer); set model.tokenizer_path={folder}"
        )
    length = config.get("max_length")
    if length is not None and int(length) != cfg.tokenizer_max_length:
        raise ConfigError(
            f"checkpoint {folder} tokenizes to max_length={length} but "
            f"model.tokenizer_max_length={cfg.tokenizer_max_length}"
        )


# ----- weights ---------------------------------------------------------------------------------


def _shared_groups(state: dict[str, torch.Tensor]) -> list[list[str]]:
    """Names that share one storage (tied weights), as safetensors.torch.save_model finds them."""
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for name, tensor in state.items():
        if tensor.device.type == "meta":
            continue
        storage = tensor.untyped_storage()
        groups[(storage.data_ptr(), storage.nbytes())].append(name)
    return [sorted(names) for names in groups.values() if len(names) > 1]


def _dedup_tied(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Keep the alphabetically first name of each tied group (save_model's choice)."""
    out = dict(state)
    metadata: dict[str, str] = {}
    for names in _shared_groups(state):
        for name in names[1:]:
            del out[name]
            metadata[name] = names[0]
    return out, metadata


def load_network_weights(policy: Any, file: Path) -> None:
    """Strictly fill policy.model from LeRobot's model.safetensors (keys 'model.<...>')."""
    if not file.is_file():
        raise ConfigError(f"{file.parent} has no {file.name}; the checkpoint is incomplete")
    weights = load_file(str(file))
    expected = {f"model.{k}": v for k, v in policy.model.state_dict().items()}
    tied = {name: group for group in _shared_groups(expected) for name in group}
    unexpected = sorted(set(weights) - set(expected))
    missing = sorted(
        k for k in set(expected) - set(weights) if not any(t in weights for t in tied.get(k, []))
    )
    wrong_shape = [
        f"{k}: file {tuple(weights[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(weights) & set(expected))
        if weights[k].shape != expected[k].shape
    ]
    if unexpected or missing or wrong_shape:
        hint = (
            MIGRATION_HINT
            if any("normalize" in k for k in unexpected)
            else (
                "the model config (model.vlm / gemma variants, num_vlm_layers, ...) must describe "
                "the checkpoint's architecture"
            )
        )
        raise ConfigError(
            f"{file} does not fit model '{policy.config.name}': "
            f"{len(missing)} missing {missing[:8]}, {len(unexpected)} unexpected "
            f"{unexpected[:8]}, {len(wrong_shape)} with other shapes {wrong_shape[:4]}; {hint}"
        )
    plain = {k[len("model.") :]: v for k, v in weights.items()}
    # keys absent from the file are tied to one that is present (checked above)
    policy.model.load_state_dict(plain, strict=False)


def _load_heads(policy: Any, folder: Path) -> None:
    own = {k: v for k, v in policy.state_dict().items() if k.startswith(HEAD_PREFIXES)}
    file = folder / HEADS_FILE
    saved = load_file(str(file)) if file.is_file() else {}
    present = {k: v for k, v in saved.items() if k in own}
    for key, value in present.items():
        if value.shape != own[key].shape:
            raise ConfigError(
                f"{file}: {key} has shape {tuple(value.shape)} but the model's is "
                f"{tuple(own[key].shape)} (noise_head_hidden / value_hidden / value_source differ)"
            )
    policy.load_state_dict(present, strict=False)
    fresh = sorted({k.split(".")[0] for k in own if k not in present})
    if fresh:
        log.warning(
            "checkpoint %s has no %s weights; they start freshly initialised", folder, fresh
        )


def load_lerobot_policy(
    path: str | os.PathLike,
    model_cfg: Any = None,
    spec: ObsSpec | None = None,
    device: str | torch.device = "cpu",
) -> Any:
    """Build the VLA policy for a LeRobot folder and load it strictly (see the module doc)."""
    from rl_post.models.config import parse_model_config
    from rl_post.models.factory import freeze_modules
    from rl_post.models.vla import build_vla_policy
    from rl_post.models.vla.training import apply_training_mode

    folder = read_lerobot_folder(path)
    cfg = parse_model_config(model_cfg) if model_cfg is not None else saved_model_config(folder)
    if not isinstance(cfg, VLAModelConfig):
        raise ConfigError(
            f"checkpoint {folder.path} holds a LeRobot '{folder.kind}' policy but the model "
            f"config '{cfg.name}' is kind '{cfg.kind}'; use model={folder.kind}"
        )
    spec = spec if spec is not None else saved_spec(folder)
    check_lerobot_config(folder, cfg, spec)
    _check_tokenizer(folder.path, cfg)
    steps = folder.config.get(STEPS_FIELD[cfg.kind])
    if steps is not None and int(steps) != cfg.num_denoise_steps:
        log.info(
            "checkpoint %s was run with %s denoising steps; using model.num_denoise_steps=%d",
            folder.path,
            steps,
            cfg.num_denoise_steps,
        )
    policy = build_vla_policy(cfg, spec, apply_training=False)
    load_network_weights(policy, folder.path / WEIGHTS_FILE)
    _load_heads(policy, folder.path)
    pre_config, pre_stats = _processor_step(folder.path, PRE_NAME, NORMALIZER_STEP)
    _, post_stats = _processor_step(folder.path, POST_NAME, UNNORMALIZER_STEP)
    stats = {**pre_stats, **{k: v for k, v in post_stats.items() if k.startswith(ACTION_KEY)}}
    policy.normalizer.eps = float(pre_config.get("eps", policy.normalizer.eps))
    policy.normalizer.load_lerobot_stats(stats, STATE_KEY, ACTION_KEY, str(folder.path))
    apply_training_mode(policy)
    freeze_modules(policy, cfg.frozen_modules)
    return policy.to(device)


# ----- writing ---------------------------------------------------------------------------------


def lerobot_config(policy: Any) -> dict[str, Any]:
    """config.json in LeRobot 0.4.4's field names (fields it would default are left out)."""
    cfg: VLAModelConfig = policy.config
    layout = policy.layout
    height, width = policy.spec.image_size
    inputs: dict[str, Any] = {
        key: {"type": "VISUAL", "shape": [3, height, width]} for key in layout.image_keys
    }
    inputs[STATE_KEY] = {"type": "STATE", "shape": [layout.state_dim]}
    out: dict[str, Any] = {
        "type": cfg.kind,
        "n_obs_steps": 1,
        "input_features": inputs,
        "output_features": {ACTION_KEY: {"type": "ACTION", "shape": [policy.action_dim]}},
        "device": "cpu",
        "use_amp": False,
        "normalization_mapping": dict(cfg.normalization_mapping),
        "n_action_steps": cfg.execute_steps,
        STEPS_FIELD[cfg.kind]: cfg.num_denoise_steps,
        "freeze_vision_encoder": cfg.freeze_vision,
        "train_expert_only": cfg.train == "expert",
    }
    for lerobot_key, (ours, _) in {**COMMON_FIELDS, **FAMILY_FIELDS[cfg.kind]}.items():
        value = getattr(cfg, ours)
        out[lerobot_key] = list(value) if isinstance(value, tuple) else value
    if cfg.kind == "smolvla":
        out["load_vlm_weights"] = False  # the VLM comes from model.safetensors
    else:
        out["dtype"] = "float32"
    return out


def _tokenizer_name(policy: Any) -> str:
    tokenizer = policy.instruction_encoder.tokenizer
    if policy.config.tokenizer_path is None:
        return BYTE_TOKENIZER_NAME
    name = getattr(tokenizer, "name_or_path", "") or ""
    if Path(name).is_dir() or not name:  # a local folder: name the model it belongs to
        return policy.config.vlm_model_name if policy.kind == "smolvla" else PI0_TOKENIZER_NAME
    return name


def _processors(policy: Any) -> tuple[dict, dict, dict, dict]:
    cfg: VLAModelConfig = policy.config
    features = lerobot_config(policy)
    all_features = {**features["input_features"], **features["output_features"]}
    stats = policy.normalizer.lerobot_stats(STATE_KEY, ACTION_KEY)
    norm = {"eps": policy.normalizer.eps, "norm_map": dict(cfg.normalization_mapping)}
    newline = "smolvla_new_line_processor" if cfg.kind == "smolvla" else "pi0_new_line_processor"
    pre_state = f"{PRE_NAME}_step_5_{NORMALIZER_STEP}.safetensors"
    pre = {
        "name": PRE_NAME,
        "steps": [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            {"registry_name": newline, "config": {}},
            {
                "registry_name": TOKENIZER_STEP,
                "config": {
                    "max_length": cfg.tokenizer_max_length,
                    "task_key": "task",
                    "padding_side": "right",
                    "padding": policy.padding,
                    "truncation": True,
                    "tokenizer_name": _tokenizer_name(policy),
                },
            },
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
            {
                "registry_name": NORMALIZER_STEP,
                "config": {**norm, "features": all_features},
                "state_file": pre_state,
            },
        ],
    }
    post_state = f"{POST_NAME}_step_0_{UNNORMALIZER_STEP}.safetensors"
    post = {
        "name": POST_NAME,
        "steps": [
            {
                "registry_name": UNNORMALIZER_STEP,
                "config": {**norm, "features": features["output_features"]},
                "state_file": post_state,
            },
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
        ],
    }
    action_stats = {k: v for k, v in stats.items() if k.startswith(ACTION_KEY)}
    return pre, {pre_state: stats}, post, {post_state: action_stats}


def lerobot_weights(policy: Any) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """model.safetensors' tensors (the network with LoRA merged, tied tensors once) and the
    metadata naming each dropped tied tensor's kept twin (as save_model records it)."""
    from rl_post.models.vla.training import merged_state_dict

    return _dedup_tied({f"model.{k}": v for k, v in merged_state_dict(policy.model).items()})


def save_lerobot_policy(
    policy: Any, path: str | os.PathLike, extra_meta: dict[str, Any] | None = None
) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RL_POST_FILE).unlink(missing_ok=True)  # incomplete until rl_post.json lands
    weights, tied = lerobot_weights(policy)
    _save_tensors(weights, folder / WEIGHTS_FILE, tied)
    heads = {k: v for k, v in policy.state_dict().items() if k.startswith(HEAD_PREFIXES)}
    _save_tensors(heads, folder / HEADS_FILE)
    pre, pre_files, post, post_files = _processors(policy)
    for name, tensors in {**pre_files, **post_files}.items():
        _save_tensors(tensors, folder / name)
    write_json(folder / f"{PRE_NAME}.json", pre)
    write_json(folder / f"{POST_NAME}.json", post)
    write_json(folder / CONFIG_FILE, lerobot_config(policy))
    policy.instruction_encoder.tokenizer.save_pretrained(str(folder))
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": policy.kind,
        "name": policy.config.name,
        "model_config": policy.config.to_dict(),
        "obs_spec": dataclasses.asdict(policy.spec),
        "extra": extra_meta or {},
    }
    write_json(folder / RL_POST_FILE, meta, allow_nan=False)
    return folder


def _save_tensors(
    tensors: dict[str, torch.Tensor], file: Path, metadata: dict[str, str] | None = None
) -> None:
    tmp = file.with_suffix(file.suffix + ".tmp")
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        str(tmp),
        metadata=metadata or None,
    )
    os.replace(tmp, file)

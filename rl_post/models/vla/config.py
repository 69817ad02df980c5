"""Typed config of the real-VLA policy families (configs/model/smolvla*.yaml, pi0*.yaml).

The architecture keys carry LeRobot's own config.json names and meaning (chunk_size is
`action_horizon`, num_steps / num_inference_steps is `num_denoise_steps`), so a LeRobot
`pretrained_model/` folder is checked key by key against the model config. The RL keys (sampler,
noise head, value head, what is trained) have the same names as the tiny flow policy's.

The transformers configs themselves are part of the model config: `vlm` holds the SmolVLM config
(LeRobot reads it from the Hub by `vlm_model_name`; here it is spelled out so nothing is
downloaded), and for pi0 `gemma_variants` / `vision` define the PaliGemma and expert shapes
(LeRobot's `gemma_2b` / `gemma_300m` tables are built in; tiny variants for tests are added here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rl_post.config import ConfigError

VLA_KINDS = ("smolvla", "pi0")
FLOW_SAMPLERS = ("flow_noise", "flow_sde", "ode")
SDE_MODES = ("all", "one")
INITIAL_NOISE = ("random", "zero")
LIKELIHOOD_ACTIONS = ("all", "executed")
TRAIN_MODES = ("expert", "lora", "all")
VALUE_SOURCES = ("prefix", "expert")
ATTENTION_MODES = ("cross_attn", "self_attn")
PAD_LANGUAGE = ("longest", "max_length")
# LeRobot 0.4.4 names the PaliGemma tokenizer explicitly (processor_pi0.py).
PI0_TOKENIZER_NAME = "google/paligemma-3b-pt-224"

# openpi / LeRobot Gemma shapes (lerobot/policies/pi0/modeling_pi0.py: get_gemma_config).
GEMMA_VARIANTS: dict[str, dict[str, int]] = {
    "gemma_300m": {
        "width": 1024,
        "depth": 18,
        "mlp_dim": 4096,
        "num_heads": 8,
        "num_kv_heads": 1,
        "head_dim": 256,
    },
    "gemma_2b": {
        "width": 2048,
        "depth": 18,
        "mlp_dim": 16384,
        "num_heads": 8,
        "num_kv_heads": 1,
        "head_dim": 256,
    },
}
GEMMA_KEYS = ("width", "depth", "mlp_dim", "num_heads", "num_kv_heads", "head_dim")


@dataclass(frozen=True)
class ObsMappingConfig:
    """How ManiSkill observations feed the policy's LeRobot input features.

    cameras: LeRobot image key -> env camera name (e.g. {observation.images.top: base_camera});
      empty: every env camera in env.cameras order as `observation.images.<camera>`.
    state_indices: entries of the env's obs["state"] that form observation.state, in order
      (null: all of them). At most max_state_dim entries (the rest is zero padding).
    instruction: a fixed instruction for every env (null: each env's own task instruction).
    """

    cameras: dict[str, str] = field(default_factory=dict)
    state_indices: tuple[int, ...] | None = None
    instruction: str | None = None


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    # Linear layers of the VLM's language model that get adapters (transformers module names).
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


@dataclass(frozen=True)
class VLAModelConfig:
    name: str
    kind: str  # smolvla | pi0
    action_horizon: int  # H = LeRobot chunk_size
    execute_steps: int  # k <= H chunk actions the env executes (LeRobot n_action_steps)
    # ---- architecture (LeRobot config.json names in the comments) ----
    max_state_dim: int = 32
    max_action_dim: int = 32
    num_denoise_steps: int = 10  # num_steps (smolvla) / num_inference_steps (pi0)
    # resize_imgs_with_padding (smolvla, (width, height)) / image_resolution (pi0, (h, w))
    image_size: tuple[int, int] = (512, 512)
    tokenizer_max_length: int = 48
    pad_language_to: str = "longest"  # smolvla; pi0 always pads to max_length
    min_period: float = 4e-3
    max_period: float = 4.0
    empty_cameras: int = 0
    # smolvla
    vlm_model_name: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    num_vlm_layers: int = 16
    num_expert_layers: int = -1
    self_attn_every_n_layers: int = 2
    expert_width_multiplier: float = 0.75
    attention_mode: str = "cross_attn"
    vlm: dict[str, Any] = field(default_factory=dict)  # SmolVLMConfig kwargs
    # pi0
    paligemma_variant: str = "gemma_2b"
    action_expert_variant: str = "gemma_300m"
    gemma_variants: dict[str, dict[str, int]] = field(default_factory=dict)  # extra variants
    vision: dict[str, Any] = field(default_factory=dict)  # SigLIP overrides (tests: tiny towers)
    # ---- inputs ----
    # LeRobot normalization_mapping: feature type -> MEAN_STD | MIN_MAX | QUANTILES | QUANTILE10 |
    # IDENTITY (VISUAL must be IDENTITY: images are only rescaled to [-1, 1])
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    )
    vocab_size: int = 257152  # pi0 (LeRobot fixes PaliGemma's vocabulary); smolvla: from vlm
    tokenizer_path: str | None = None  # dir with tokenizer files; null: the built-in byte tokenizer
    obs: ObsMappingConfig = field(default_factory=ObsMappingConfig)
    # ---- RL (same meaning as the tiny flow policy's keys) ----
    sampler: str = "flow_noise"
    initial_noise: str = "random"  # random: x_1 ~ N(0, I) (LeRobot) | zero: a fixed start
    noise_level: float = 0.5
    sde_mode: str = "all"
    sde_t_max: float | None = None
    sigma_min: float = 0.02
    sigma_max: float = 0.3
    noise_head_hidden: int = 128
    value_head: bool = True
    value_source: str = "prefix"  # prefix: pooled VLM prefix; expert: expert output at t=1, x=0
    value_hidden: int = 256
    detach_value_head: bool = False
    likelihood_actions: str = "all"
    train: str = "expert"  # expert | lora | all: what RL (and SFT) updates
    freeze_vision: bool = True  # train=all/lora: keep the vision encoder frozen
    lora: LoraSettings = field(default_factory=LoraSettings)
    frozen_modules: tuple[str, ...] = ()
    bc_time_beta: tuple[float, float] = (1.5, 1.0)
    bc_time_min: float = 0.001

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def gemma(self, variant: str) -> dict[str, int]:
        table = {**GEMMA_VARIANTS, **self.gemma_variants}
        if variant not in table:
            raise ConfigError(
                f"unknown gemma variant '{variant}'; known: {', '.join(sorted(table))} (add a "
                "custom one under model.gemma_variants)"
            )
        return table[variant]


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    valid = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(sorted(valid))}"
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "obs":
            value = _build(ObsMappingConfig, value or {}, f"{where}.obs")
        elif key == "lora":
            value = _build(LoraSettings, value or {}, f"{where}.lora")
        elif key in ("vlm", "vision", "gemma_variants", "normalization_mapping"):
            value = dict(value or {})
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    missing = [
        name
        for name, f in valid.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and name not in values
    ]
    if missing:
        raise ConfigError(f"{where} is missing required key(s) {missing}")
    return cls(**values)


def parse_vla_config(raw: Mapping[str, Any]) -> VLAModelConfig:
    cfg = _build(VLAModelConfig, raw, "model config")
    _validate(cfg)
    return cfg


def _choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"model.{key}='{value}' is not valid; choose one of {', '.join(choices)}")


def _validate(cfg: VLAModelConfig) -> None:
    _choice(cfg.kind, VLA_KINDS, "kind")
    _choice(cfg.sampler, FLOW_SAMPLERS, "sampler")
    _choice(cfg.initial_noise, INITIAL_NOISE, "initial_noise")
    _choice(cfg.sde_mode, SDE_MODES, "sde_mode")
    _choice(cfg.likelihood_actions, LIKELIHOOD_ACTIONS, "likelihood_actions")
    _choice(cfg.train, TRAIN_MODES, "train")
    _choice(cfg.value_source, VALUE_SOURCES, "value_source")
    _choice(cfg.attention_mode, ATTENTION_MODES, "attention_mode")
    _choice(cfg.pad_language_to, PAD_LANGUAGE, "pad_language_to")
    for key in ("action_horizon", "execute_steps", "num_denoise_steps", "max_state_dim"):
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"model.{key} must be > 0, got {getattr(cfg, key)}")
    if cfg.execute_steps > cfg.action_horizon:
        raise ConfigError(
            f"model.execute_steps={cfg.execute_steps} exceeds model.action_horizon="
            f"{cfg.action_horizon}; the env can execute at most the H actions of a chunk"
        )
    if not 0 < cfg.sigma_min <= cfg.sigma_max:
        raise ConfigError(
            f"need 0 < model.sigma_min <= model.sigma_max, got {cfg.sigma_min}, {cfg.sigma_max}"
        )
    if cfg.sde_t_max is not None and not 0 < cfg.sde_t_max < 1:
        raise ConfigError(f"model.sde_t_max must be in (0, 1) or null, got {cfg.sde_t_max}")
    if len(cfg.image_size) != 2 or min(cfg.image_size) <= 0:
        raise ConfigError(f"model.image_size must be [a, b] > 0, got {list(cfg.image_size)}")
    if cfg.kind == "smolvla" and not cfg.vlm:
        raise ConfigError(
            "model.vlm is empty; a smolvla model needs its SmolVLM config (text_config, "
            "vision_config, scale_factor), see configs/model/smolvla.yaml"
        )
    if cfg.kind == "pi0":
        if cfg.image_size[0] != cfg.image_size[1]:
            raise ConfigError(f"pi0 needs square images, got model.image_size={cfg.image_size}")
        for variant in (cfg.paligemma_variant, cfg.action_expert_variant):
            shape = cfg.gemma(variant)
            missing = [k for k in GEMMA_KEYS if k not in shape]
            if missing:
                raise ConfigError(f"model.gemma_variants.{variant} lacks {missing}")
        vlm, expert = cfg.gemma(cfg.paligemma_variant), cfg.gemma(cfg.action_expert_variant)
        for key in ("depth", "num_heads", "num_kv_heads", "head_dim"):
            if vlm[key] != expert[key]:
                raise ConfigError(
                    f"pi0 merges the VLM and expert layers into one attention, so their {key} "
                    f"must agree: {cfg.paligemma_variant} has {vlm[key]}, "
                    f"{cfg.action_expert_variant} has {expert[key]}"
                )
    if cfg.obs.state_indices is not None and len(cfg.obs.state_indices) > cfg.max_state_dim:
        raise ConfigError(
            f"model.obs.state_indices selects {len(cfg.obs.state_indices)} state entries but "
            f"max_state_dim is {cfg.max_state_dim}; select at most {cfg.max_state_dim}"
        )
    mapping = cfg.normalization_mapping
    for key in ("STATE", "ACTION"):
        if key not in mapping:
            raise ConfigError(f"model.normalization_mapping needs a {key} entry")
    if mapping.get("VISUAL", "IDENTITY") != "IDENTITY":
        raise ConfigError(
            "model.normalization_mapping.VISUAL must be IDENTITY (images are rescaled to [-1, 1] "
            f"as in LeRobot's SmolVLA and pi0), got {mapping['VISUAL']}"
        )
    if cfg.lora.r < 1:
        raise ConfigError(f"model.lora.r must be >= 1, got {cfg.lora.r}")

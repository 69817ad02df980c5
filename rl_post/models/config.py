"""Typed model configuration parsed from the Hydra `model` group (configs/model/*.yaml).

Parsing turns a loose mapping into frozen dataclasses once, so every module reads checked fields
and a typo in a YAML key becomes one clear ConfigError listing the valid keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rl_post.config import ConfigError

MODEL_KINDS = ("flow", "token", "gaussian")
ACTIVATIONS = ("tanh", "relu", "gelu")
BC_OBJECTIVES = ("nll", "mse")
FLOW_SAMPLERS = ("flow_noise", "flow_sde", "ode")
SDE_MODES = ("all", "one")
LIKELIHOOD_ACTIONS = ("all", "executed")
INITIAL_NOISE = ("random", "zero")
VALUE_INPUTS = ("pooled", "state")
TOKENIZERS = ("hashed_words", "bytes")


@dataclass(frozen=True)
class VisionConfig:
    channels: tuple[int, ...] = (16, 32, 64)  # conv stack widths, each conv halves the resolution
    tokens_per_side: int = (
        2  # the final feature map is pooled to a side x side token grid per camera
    )


@dataclass(frozen=True)
class LanguageConfig:
    tokenizer: str = "hashed_words"  # hashed_words | bytes (both need no download)
    vocab_size: int = 512  # hash buckets for hashed_words (bytes always uses 256)
    max_tokens: int = 16  # instructions are truncated / padded to this many tokens
    cache_size: int = 4096  # distinct instruction strings kept tokenized


@dataclass(frozen=True)
class ModelConfig:
    name: str
    kind: str
    action_horizon: int  # H: actions per chunk
    execute_steps: int  # k <= H: chunk actions the env executes per decision
    d_model: int = 64
    num_heads: int = 4
    backbone_layers: int = 2
    mlp_ratio: float = 2.0
    state_hidden: int = 64
    vision: VisionConfig = field(default_factory=VisionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    value_head: bool = True
    detach_value_head: bool = False  # True: value loss does not train the shared backbone
    value_hidden: int = 64
    # Critic input: pooled backbone feature (shares the VLA's features) or the normalized state
    # through its own MLP of value_layers tanh layers (an asymmetric critic, state obs only).
    value_input: str = "pooled"
    value_layers: int = 3
    # Which chunk actions carry the RL log-likelihood: all H, or the first execute_steps (the rest
    # never reach the env; their tokens add gradient noise and no signal).
    likelihood_actions: str = "all"
    # Top-level submodules the learner leaves untouched (e.g. ("backbone",): RL trains only the
    # action expert / head on top of SFT features). A runtime choice, not part of the architecture.
    frozen_modules: tuple[str, ...] = ()
    # Half-open [start, stop) ranges of the state vector the policy does not see (zeroed after
    # normalization, i.e. set to the demos' mean); a state critic (value_input=state) still does.
    # E.g. [[9, 18]]: a ManiSkill Panda's joint velocities, which a cloned policy can read as
    # "keep moving" and then stall wherever it has slowed down (see README, PickCube (a)).
    policy_state_drop: tuple[tuple[int, int], ...] = ()
    # Flow-matching (kind=flow)
    sampler: str = "flow_noise"
    num_denoise_steps: int = 4  # K
    # x_1 of every chain: random N(0, I) as in pi0, or zero (a fixed start: all action noise then
    # comes from likelihood-visible steps, and the deterministic policy is the noise-free chain)
    initial_noise: str = "random"
    expert_layers: int = 2
    expert_d_model: int = 64
    noise_level: float = 0.5  # a in sigma_t = a * sqrt(t / (1 - t)) (flow_sde)
    sde_mode: str = "all"  # all: every step stochastic; one: one random step per sample
    sde_t_max: float | None = (
        None  # t clamp in 1 - t for flow_sde; None: 1 - 1/K (the next grid time)
    )
    sigma_min: float = 0.02  # Flow-Noise noise-head bounds (normalized action units)
    sigma_max: float = 0.3
    noise_head_hidden: int = 64
    bc_time_beta: tuple[float, float] = (1.5, 1.0)  # flow-matching time t ~ Beta(a, b) (pi0)
    bc_time_min: float = 0.001  # t = bc_time_min + (1 - bc_time_min) * Beta sample
    # Discrete tokens (kind=token)
    num_bins: int = 256
    temperature: float = 1.0
    # Gaussian MLP (kind=gaussian): state-only actor and critic MLPs (CleanRL / ManiSkill PPO)
    hidden_sizes: tuple[int, ...] = (256, 256, 256)  # actor and critic hidden widths
    activation: str = "tanh"  # tanh | relu | gelu
    init_log_std: float = -0.5  # state-independent log-std per action dim, normalized units
    actor_output_gain: float = 0.01 * 2**0.5  # orthogonal gain of the mean layer (ManiSkill)
    bc_objective: str = "nll"  # SFT loss: nll (Gaussian NLL, fits mean and std) | mse (mean only)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    valid = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(sorted(valid))}"
        )
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "vision":
            value = _build(VisionConfig, value or {}, f"{where}.vision")
        elif key == "language":
            value = _build(LanguageConfig, value or {}, f"{where}.language")
        elif key == "policy_state_drop":
            value = _index_ranges(value, f"{where}.{key}")
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


def _index_ranges(value: Any, where: str) -> tuple[tuple[int, int], ...]:
    """[[start, stop], ...] with 0 <= start < stop -> a tuple of int pairs."""
    ranges = []
    for pair in value or ():
        if len(pair) != 2 or not 0 <= int(pair[0]) < int(pair[1]):
            raise ConfigError(
                f"{where} takes [start, stop] index ranges with 0 <= start < stop, got "
                f"{list(pair)}; e.g. [[9, 18]]"
            )
        ranges.append((int(pair[0]), int(pair[1])))
    return tuple(ranges)


def _to_plain(raw: Any) -> dict[str, Any]:
    if isinstance(raw, ModelConfig):
        return raw.to_dict()
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(raw, DictConfig):
            return OmegaConf.to_container(raw, resolve=True)  # type: ignore[return-value]
    except ImportError:  # omegaconf is a dependency; this only guards odd environments
        pass
    if not isinstance(raw, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(raw).__name__}")
    return dict(raw)


def parse_model_config(raw: Any) -> Any:
    """Check and freeze a model config (DictConfig, dict or ModelConfig). Kinds smolvla / pi0
    (the real VLAs, rl_post.models.vla) give a VLAModelConfig."""
    from rl_post.models.vla.config import VLA_KINDS, VLAModelConfig, parse_vla_config

    if isinstance(raw, VLAModelConfig):
        return raw
    if isinstance(raw, ModelConfig):
        cfg = raw
    else:
        plain = _to_plain(raw)
        if plain.get("kind") in VLA_KINDS:
            return parse_vla_config(plain)
        cfg = _build(ModelConfig, plain, "model config")
    _validate(cfg)
    return cfg


def _choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"model.{key}='{value}' is not valid; choose one of {', '.join(choices)}")


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise ConfigError(f"model.{key} must be > 0, got {value}")


def _validate(cfg: ModelConfig) -> None:
    _choice(cfg.kind, MODEL_KINDS, "kind")
    _choice(cfg.sampler, FLOW_SAMPLERS, "sampler")
    _choice(cfg.sde_mode, SDE_MODES, "sde_mode")
    _choice(cfg.likelihood_actions, LIKELIHOOD_ACTIONS, "likelihood_actions")
    _choice(cfg.initial_noise, INITIAL_NOISE, "initial_noise")
    _choice(cfg.value_input, VALUE_INPUTS, "value_input")
    _choice(cfg.language.tokenizer, TOKENIZERS, "language.tokenizer")
    _choice(cfg.activation, ACTIVATIONS, "activation")
    _choice(cfg.bc_objective, BC_OBJECTIVES, "bc_objective")
    if not cfg.hidden_sizes or any(int(w) < 1 for w in cfg.hidden_sizes):
        raise ConfigError(
            f"model.hidden_sizes must be a non-empty list of positive widths, got "
            f"{list(cfg.hidden_sizes)}"
        )
    for key in ("action_horizon", "execute_steps", "d_model", "num_heads", "num_denoise_steps"):
        _positive(getattr(cfg, key), key)
    if cfg.execute_steps > cfg.action_horizon:
        raise ConfigError(
            f"model.execute_steps={cfg.execute_steps} exceeds model.action_horizon="
            f"{cfg.action_horizon}; the env can execute at most the H actions of a chunk"
        )
    for width, heads_key in ((cfg.d_model, "d_model"), (cfg.expert_d_model, "expert_d_model")):
        if width % cfg.num_heads:
            raise ConfigError(
                f"model.{heads_key}={width} must be divisible by model.num_heads={cfg.num_heads}"
            )
    if cfg.policy_state_drop and cfg.kind == "gaussian":
        raise ConfigError(
            "model.policy_state_drop is implemented for the flow and token policies; the Gaussian "
            "MLP reads the whole state (set model.policy_state_drop=[])"
        )
    if not 0 < cfg.sigma_min <= cfg.sigma_max:
        raise ConfigError(
            f"need 0 < model.sigma_min <= model.sigma_max, got {cfg.sigma_min}, {cfg.sigma_max}"
        )
    _positive(cfg.temperature, "temperature")
    if cfg.num_bins < 2:
        raise ConfigError(f"model.num_bins must be >= 2, got {cfg.num_bins}")
    if cfg.sde_t_max is not None and not 0 < cfg.sde_t_max < 1:
        raise ConfigError(f"model.sde_t_max must be in (0, 1) or null, got {cfg.sde_t_max}")
    if not cfg.vision.channels:
        raise ConfigError("model.vision.channels needs at least one conv width")

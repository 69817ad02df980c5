"""Reward functions and the scorer that rewrites a segment's rewards (the trainer's "score" step).

A reward function maps a batch of transitions (decisions) to rewards. Every batch is time-major
[T, N] like a Segment: obs at decision start, end_obs at decision end (before auto-reset), actions,
the env's reward and its true success. Built-in functions, chosen with `reward=<name>`:

  env                 the env's reward as is (env.reward_mode decides sparse / dense)
  env_sparse          true success as a 0/1 reward at the decision that ends in success,
                      regardless of env.reward_mode
  env_dense           the env's dense reward; env.reward_mode must be dense or normalized_dense
  success_classifier  a learned success classifier on end-of-decision observations: sparse (1 when
                      the probability exceeds reward.threshold) or dense (the probability itself)

Sparse rewards fire once per episode by default (reward.once_per_episode). Potential-based shaping
and a success bonus can be added to any of them (see rl_post.rewards.shaping).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from omegaconf import DictConfig, OmegaConf

from rl_post.config import ConfigError
from rl_post.data.segment import Segment
from rl_post.envs.spec import ObsSpec
from rl_post.rewards.agreement import agreement_metrics
from rl_post.rewards.shaping import Potential, first_events, potential_shaping, resolve_potential

REWARD_NAMES = ("env", "env_sparse", "env_dense", "success_classifier")
DENSE_ENV_MODES = ("dense", "normalized_dense")
CLASSIFIER_MODES = ("sparse", "dense")
SHAPING_KINDS = ("none", "potential")

# obs dict [B, ...] -> success probability [B]
Predictor = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class TransitionBatch:
    obs: dict[str, torch.Tensor]  # [T, N, ...] at decision start
    end_obs: dict[str, torch.Tensor]  # [T, N, ...] at decision end, before auto-reset (may be {})
    actions: torch.Tensor  # [T, N, H, A]
    env_reward: torch.Tensor  # [T, N]
    success: torch.Tensor  # [T, N] bool, true sim success at decision end
    terminated: torch.Tensor  # [T, N] bool
    truncated: torch.Tensor  # [T, N] bool
    active: torch.Tensor  # [T, N] bool

    @staticmethod
    def from_segment(segment: Segment) -> TransitionBatch:
        return TransitionBatch(
            obs=segment.obs,
            end_obs=segment.end_obs,
            actions=segment.actions,
            env_reward=segment.reward,
            success=segment.success,
            terminated=segment.terminated,
            truncated=segment.truncated,
            active=segment.active,
        )


@dataclass
class RewardOutput:
    reward: torch.Tensor  # [T, N]
    events: torch.Tensor  # [T, N] bool: success events (true or predicted) for bonus / once
    sparse: bool  # True when `reward` is the event indicator (once_per_episode applies)
    probs: torch.Tensor | None = None  # [T, N] predicted success probability, learned rewards only


class RewardFunction(Protocol):
    name: str

    def __call__(self, batch: TransitionBatch) -> RewardOutput: ...


class EnvReward:
    name = "env"

    def __call__(self, batch: TransitionBatch) -> RewardOutput:
        return RewardOutput(batch.env_reward.float(), batch.success.bool(), sparse=False)


class EnvDenseReward(EnvReward):
    name = "env_dense"


class EnvSparseReward:
    name = "env_sparse"

    def __call__(self, batch: TransitionBatch) -> RewardOutput:
        events = batch.success.bool()
        return RewardOutput(events.float(), events, sparse=True)


def predict_time_major(predictor: Predictor, obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply a flat-batch predictor to [T, N, ...] observations -> [T, N]."""
    if "state" not in obs:
        raise ValueError("observations have no 'state' entry")
    t, n = obs["state"].shape[:2]
    flat = {k: v.reshape(t * n, *v.shape[2:]) for k, v in obs.items()}
    return predictor(flat).reshape(t, n).float().cpu()


class ClassifierReward:
    name = "success_classifier"

    def __init__(self, predictor: Predictor, mode: str, threshold: float):
        self.predictor, self.mode, self.threshold = predictor, mode, threshold

    def __call__(self, batch: TransitionBatch) -> RewardOutput:
        if not batch.end_obs:
            raise ValueError(
                "the segment has no end_obs; the rollout workers must be built with "
                "reward.needs_end_obs=true"
            )
        probs = predict_time_major(self.predictor, batch.end_obs)
        events = probs > self.threshold
        if self.mode == "sparse":
            return RewardOutput(events.float(), events, sparse=True, probs=probs)
        return RewardOutput(probs, events, sparse=False, probs=probs)


@dataclass(frozen=True)
class RewardSettings:
    name: str
    needs_end_obs: bool
    once_per_episode: bool
    success_bonus: float
    shaping: str
    potential: str
    shaping_scale: float
    shaping_gamma: float
    checkpoint: str | None
    mode: str
    threshold: float
    batch_size: int
    device: str
    num_gpus: float
    num_cpus: float
    agreement_bins: int

    @property
    def needs_classifier(self) -> bool:
        return self.name == "success_classifier" or (
            self.shaping == "potential" and self.potential == "classifier"
        )


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if str(value) not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(choices)}")
    return str(value)


def parse_reward_settings(cfg: DictConfig) -> RewardSettings:
    """Check the `reward` group against the env and algo config (fails before workers start)."""
    r = cfg.get("reward")
    if r is None:  # a run recorded before the reward group existed: the env reward
        from rl_post.config import config_dir

        r = OmegaConf.load(config_dir() / "reward" / "env.yaml")
    name = _choice(r.name, "reward", REWARD_NAMES)
    if name == "env_dense" and str(cfg.env.reward_mode) not in DENSE_ENV_MODES:
        raise ConfigError(
            f"reward=env_dense needs a dense env reward but env.reward_mode={cfg.env.reward_mode}; "
            f"set env.reward_mode to one of {', '.join(DENSE_ENV_MODES)} (or use reward=env)"
        )
    gamma = r.shaping_gamma
    settings = RewardSettings(
        name=name,
        needs_end_obs=bool(r.needs_end_obs),
        once_per_episode=bool(r.once_per_episode),
        success_bonus=float(r.success_bonus),
        shaping=_choice(r.shaping, "reward.shaping", SHAPING_KINDS),
        potential=str(r.potential),
        shaping_scale=float(r.shaping_scale),
        shaping_gamma=float(cfg.algo.gamma if gamma is None else gamma),
        checkpoint=None if r.checkpoint is None else str(r.checkpoint),
        mode=_choice(r.mode, "reward.mode", CLASSIFIER_MODES),
        threshold=float(r.threshold),
        batch_size=int(r.batch_size),
        device=str(r.device),
        num_gpus=float(r.num_gpus),
        num_cpus=float(r.num_cpus),
        agreement_bins=int(r.agreement_bins),
    )
    uses_end_obs = name == "success_classifier" or settings.shaping == "potential"
    if uses_end_obs and not settings.needs_end_obs:
        raise ConfigError(
            f"reward={name} with reward.shaping={settings.shaping} reads end-of-decision "
            "observations; set reward.needs_end_obs=true"
        )
    if settings.needs_classifier and not settings.checkpoint:
        raise ConfigError(
            "this reward uses the learned success classifier but reward.checkpoint is null; "
            "train one with `rl-post reward train` and pass reward.checkpoint=<run>/classifier"
        )
    if not 0.0 < settings.threshold < 1.0:
        raise ConfigError(f"reward.threshold={settings.threshold} must be in (0, 1)")
    if settings.batch_size < 1 or settings.agreement_bins < 1:
        raise ConfigError("reward.batch_size and reward.agreement_bins must be >= 1")
    return settings


class RewardScorer:
    """Rewrites `segment.reward` in place (zero on inactive decisions) and returns metrics.

    Keeps, per sub-env, whether the current episode already had its success event, so "once per
    episode" holds across segment boundaries; `reset_each_segment` clears that at every segment.
    """

    def __init__(
        self,
        settings: RewardSettings,
        function: RewardFunction,
        potential: Potential | None = None,
        reset_each_segment: bool = False,
        on_close: Callable[[], None] | None = None,
    ):
        self.settings = settings
        self.function = function
        self.potential = potential
        self.reset_each_segment = reset_each_segment
        self._fired: torch.Tensor | None = None
        self._on_close = on_close

    @property
    def is_identity(self) -> bool:
        s = self.settings
        return s.name in ("env", "env_dense") and s.shaping == "none" and s.success_bonus == 0.0

    def score(self, segment: Segment) -> dict[str, float]:
        if self.is_identity:
            return {}
        s = self.settings
        batch = TransitionBatch.from_segment(segment)
        out = self.function(batch)
        active = batch.active.bool()
        done = batch.terminated.bool() | batch.truncated.bool()
        n = segment.num_envs
        if self._fired is None or self.reset_each_segment or self._fired.shape[0] != n:
            self._fired = torch.zeros(n, dtype=torch.bool)
        first, self._fired = first_events(out.events.cpu() & active, done, self._fired)
        if out.sparse:
            reward = first.float() if s.once_per_episode else out.events.float()
        else:
            reward = out.reward.float().clone()
        bonus_events = first if s.once_per_episode else out.events & active
        reward = reward + s.success_bonus * bonus_events.float()
        metrics: dict[str, float] = {}
        probs = out.probs
        if self.potential is not None:
            learned_potential = s.potential == "classifier"
            if learned_potential and probs is not None:
                phi_end = probs  # the classifier already scored these end observations
            else:
                phi_end = predict_time_major(self.potential, batch.end_obs)
            if learned_potential and probs is None:
                probs = phi_end  # agreement metrics for a classifier used only as a potential
            shaped = s.shaping_scale * potential_shaping(
                predict_time_major(self.potential, batch.obs),
                phi_end,
                batch.terminated,
                s.shaping_gamma,
            )
            reward = reward + shaped
            metrics["reward/shaping_mean"] = _masked_mean(shaped, active)
        reward = reward * active.float()
        segment.reward = reward.to(segment.reward.dtype)
        metrics["reward/mean"] = _masked_mean(reward, active)
        metrics["reward/events"] = float((first & active).sum())
        if probs is not None:
            metrics.update(
                agreement_metrics(
                    probs[active], batch.success.bool()[active], s.threshold, s.agreement_bins
                )
            )
        return metrics

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    m = mask.float()
    return float((values.float() * m).sum() / m.sum().clamp(min=1))


def build_scorer(cfg: DictConfig, spec: ObsSpec, use_ray: bool = False) -> RewardScorer:
    """The scorer of a training config; learned models run in a RewardWorker actor under Ray."""
    from rl_post.rewards.worker import build_predictor

    settings = parse_reward_settings(cfg)
    predictor: Predictor | None = None
    on_close = None
    if settings.needs_classifier:
        predictor, on_close = build_predictor(settings, spec, use_ray)
    function: RewardFunction
    if settings.name == "success_classifier":
        assert predictor is not None
        function = ClassifierReward(predictor, settings.mode, settings.threshold)
    else:
        function = {"env": EnvReward, "env_sparse": EnvSparseReward, "env_dense": EnvDenseReward}[
            settings.name
        ]()
    potential: Potential | None = None
    if settings.shaping == "potential":
        potential = (
            predictor
            if settings.potential == "classifier"
            else resolve_potential(settings.potential)
        )
    # The trainer passes a prepared config, where "auto" has become a bool.
    reset_each = cfg.train.get("reset_each_segment", False)
    return RewardScorer(settings, function, potential, reset_each is True, on_close)

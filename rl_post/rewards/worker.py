"""Where a learned reward model runs: in this process (serial mode) or in a RewardWorker Ray actor,
optionally on its own GPU (`reward.num_gpus`). Both answer obs dict [B, ...] -> probabilities [B]."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.rewards.classifier import SuccessClassifier, load_classifier, read_classifier_meta

if TYPE_CHECKING:
    from rl_post.rewards.base import Predictor, RewardSettings


def reward_device(wanted: str) -> str:
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"reward.device={wanted} but CUDA is not available; use cpu or auto")
    return wanted


class ClassifierPredictor:
    """Batched success probabilities from a classifier checkpoint (the plain class)."""

    def __init__(self, checkpoint: str, device: str, batch_size: int):
        self.model: SuccessClassifier = load_classifier(checkpoint, reward_device(device))
        self.batch_size = batch_size

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        total = int(obs["state"].shape[0])
        parts = [
            self.model.predict_proba({k: v[i : i + self.batch_size] for k, v in obs.items()})
            for i in range(0, total, self.batch_size)
        ]
        return torch.cat(parts).cpu() if parts else torch.zeros(0)


class RewardWorker:
    """Ray actor shell over ClassifierPredictor."""

    def __init__(self, checkpoint: str, device: str, batch_size: int, torch_threads: int = 1):
        torch.set_num_threads(max(1, torch_threads))
        self.predictor = ClassifierPredictor(checkpoint, device, batch_size)

    def predict(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.predictor(obs)

    def ready(self) -> bool:
        return True


class RemotePredictor:
    def __init__(self, actor: Any):
        self.actor = actor

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        import ray

        return ray.get(self.actor.predict.remote(obs))


def check_classifier_fits(checkpoint: str, spec: ObsSpec) -> None:
    _, config = read_classifier_meta(checkpoint)
    if config.state_dim != spec.state_dim:
        raise ConfigError(
            f"reward classifier {checkpoint} was trained on state_dim {config.state_dim} but the env "
            f"has state_dim {spec.state_dim}; train it with the same env.tasks / env.obs_mode"
        )
    if config.use_rgb and (not spec.has_rgb or len(spec.cameras) != config.num_cameras):
        raise ConfigError(
            f"reward classifier {checkpoint} reads rgb from {config.num_cameras} camera(s) but the "
            f"env gives {len(spec.cameras)}; set env.obs_mode=state_rgb with matching env.cameras"
        )


def build_predictor(
    settings: RewardSettings, spec: ObsSpec, use_ray: bool
) -> tuple[Predictor, Callable[[], None] | None]:
    """(predictor, close callback). Under Ray the model lives in a RewardWorker actor."""
    assert settings.checkpoint is not None
    check_classifier_fits(settings.checkpoint, spec)
    if not use_ray:
        return ClassifierPredictor(settings.checkpoint, settings.device, settings.batch_size), None
    import ray

    actor_cls = ray.remote(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus)(RewardWorker)
    actor = actor_cls.remote(settings.checkpoint, settings.device, settings.batch_size)
    ray.get(actor.ready.remote())

    def close() -> None:
        ray.kill(actor)

    return RemotePredictor(actor), close

"""Learned success classifier: observation (state, optionally rgb) -> probability of task success.

Checkpoint: one directory, alongside and shaped like the policy's (rl_post.models.checkpoint):
  meta.json            format name + version, kind, the training summary (held-out metrics)
  model_config.json    ClassifierConfig
  model.safetensors    weights (normalization buffers excluded)
  normalization.json   state mean / std of the training set
meta.json is written last, so a directory without it is an interrupted save.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from rl_post.checkpoint_dir import (
    CONFIG_FILE,
    META_FILE,
    NORMALIZATION_FILE,
    WEIGHTS_FILE,
    require_file,
    write_checkpoint_dir,
)
from rl_post.config import ConfigError

FORMAT_NAME = "rl_post.reward_classifier"
FORMAT_VERSION = 1
KIND = "success_classifier"
POLICY_FORMAT_NAME = "rl_post.policy"
NORMALIZER_KEYS = ("state_mean", "state_std")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    state_dim: int
    hidden: tuple[int, ...]
    use_rgb: bool = False
    num_cameras: int = 0
    image_size: tuple[int, int] = (0, 0)
    conv_channels: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> ClassifierConfig:
        return ClassifierConfig(
            state_dim=int(raw["state_dim"]),
            hidden=tuple(int(h) for h in raw["hidden"]),
            use_rgb=bool(raw.get("use_rgb", False)),
            num_cameras=int(raw.get("num_cameras", 0)),
            image_size=tuple(int(x) for x in raw.get("image_size", (0, 0))),  # type: ignore[arg-type]
            conv_channels=tuple(int(c) for c in raw.get("conv_channels", ())),
        )


class ImageEncoder(nn.Module):
    """Stride-2 convs per camera, global average pool, cameras concatenated."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for c in channels:
            layers += [nn.Conv2d(previous, c, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            previous = c
        self.net = nn.Sequential(*layers)
        self.out_dim = previous

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # [B, V, H, W, 3] uint8
        b, v = rgb.shape[:2]
        images = rgb.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
        features = self.net(images).mean(dim=(2, 3))
        return features.view(b, v * self.out_dim)


class SuccessClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        self.register_buffer("state_mean", torch.zeros(config.state_dim))
        self.register_buffer("state_std", torch.ones(config.state_dim))
        self.image_encoder = ImageEncoder(config.conv_channels) if config.use_rgb else None
        width = config.state_dim
        if self.image_encoder is not None:
            width += config.num_cameras * self.image_encoder.out_dim
        layers: list[nn.Module] = []
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.state_mean.copy_(mean)
        # Constant features (std 0) would divide by zero; leave them unscaled.
        self.state_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, state: torch.Tensor, rgb: torch.Tensor | None = None) -> torch.Tensor:
        """Success logits [B]."""
        x = (state.float() - self.state_mean) / self.state_std
        if self.image_encoder is not None:
            if rgb is None:
                raise ValueError("this classifier was trained on rgb; pass obs with an 'rgb' key")
            x = torch.cat([x, self.image_encoder(rgb)], dim=-1)
        return self.head(x).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Success probabilities [B] for a flat batch of observations."""
        device = self.state_mean.device
        rgb = obs.get("rgb") if self.config.use_rgb else None
        logits = self(obs["state"].to(device), None if rgb is None else rgb.to(device))
        return torch.sigmoid(logits)


def save_classifier(
    model: SuccessClassifier, path: str | os.PathLike, extra_meta: dict[str, Any] | None = None
) -> Path:
    weights = {k: v for k, v in model.state_dict().items() if k not in NORMALIZER_KEYS}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "extra": extra_meta or {},
    }
    normalization = {k: getattr(model, k).cpu().tolist() for k in NORMALIZER_KEYS}
    return write_checkpoint_dir(path, weights, normalization, model.config.to_dict(), meta)


def _read_json(folder: Path, name: str) -> Any:
    file = require_file(
        folder, name, "reward classifier checkpoint", "re-train it with `rl-post reward train`"
    )
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"reward classifier checkpoint {folder} has a corrupt {name} ({exc})"
        ) from None


def read_classifier_meta(path: str | os.PathLike) -> tuple[dict[str, Any], ClassifierConfig]:
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(
            f"reward classifier checkpoint {folder} does not exist; train one with "
            "`rl-post reward train` and pass its classifier directory as reward.checkpoint"
        )
    meta = _read_json(folder, META_FILE)
    fmt = meta.get("format")
    if fmt == POLICY_FORMAT_NAME:
        raise ConfigError(
            f"{folder} is a policy checkpoint, not a reward classifier; pass the directory written "
            "by `rl-post reward train` (…/classifier) as reward.checkpoint"
        )
    if fmt != FORMAT_NAME or meta.get("kind") != KIND:
        raise ConfigError(
            f"{folder} is not an rl_post reward classifier (format {fmt!r}, kind "
            f"{meta.get('kind')!r}; expected {FORMAT_NAME!r}, {KIND!r}); train one with "
            "`rl-post reward train`"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"reward classifier {folder} has format version {meta.get('format_version')}, this "
            f"rl_post reads {FORMAT_VERSION}; re-train it with `rl-post reward train`"
        )
    return meta, ClassifierConfig.from_dict(_read_json(folder, CONFIG_FILE))


def load_classifier(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> SuccessClassifier:
    folder = Path(path)
    _, config = read_classifier_meta(folder)
    model = SuccessClassifier(config)
    weights = load_file(str(folder / WEIGHTS_FILE))
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even with strict=False
        raise ConfigError(
            f"reward classifier {folder} weights do not fit its config ({exc})"
        ) from None
    missing = [k for k in missing if k not in NORMALIZER_KEYS]
    if missing or unexpected:
        raise ConfigError(
            f"reward classifier {folder} weights do not fit its config (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); re-train it with `rl-post reward train`"
        )
    stats = _read_json(folder, NORMALIZATION_FILE)
    model.state_mean.copy_(torch.tensor(stats["state_mean"], dtype=torch.float32))
    model.state_std.copy_(torch.tensor(stats["state_std"], dtype=torch.float32))
    return model.to(device).eval()

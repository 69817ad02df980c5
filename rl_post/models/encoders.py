"""Observation encoders: cameras, instruction text and proprioceptive state -> backbone tokens.

`ObservationTokenizer` turns the env obs dict into the prefix token sequence
[summary, state, camera tokens..., instruction tokens...] plus a validity mask (instruction
padding is invalid). The summary token is a learned query whose backbone output is the pooled
feature (value head). State-only obs simply produce no camera tokens. obs["state"] arrives
already normalized (the policy owns the Normalizer; see VLAPolicyBase.encode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models.config import LanguageConfig, ModelConfig, VisionConfig
from rl_post.models.tokenizer import PAD_ID, InstructionTokenizer
from rl_post.models.transformer import MLP

CONV_KERNEL = 3  # stride-2 convs: each halves the resolution


class VisionEncoder(nn.Module):
    """Shared small conv net over every camera, pooled to a grid of tokens per camera."""

    def __init__(self, cfg: VisionConfig, num_cameras: int, dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for width in cfg.channels:
            layers += [nn.Conv2d(in_ch, width, CONV_KERNEL, stride=2, padding=1), nn.GELU()]
            in_ch = width
        self.convs = nn.Sequential(*layers)
        self.side = cfg.tokens_per_side
        self.proj = nn.Linear(in_ch, dim)
        tokens = self.side * self.side
        self.position = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        self.camera = nn.Parameter(torch.randn(num_cameras, 1, dim) * 0.02)
        self.num_cameras = num_cameras
        self.tokens_per_camera = tokens

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb uint8 [N, V, H, W, 3] -> tokens [N, V * side^2, dim]."""
        n, v = rgb.shape[:2]
        if v != self.num_cameras:
            raise ConfigError(
                f"obs['rgb'] has {v} camera(s) but the policy was built for {self.num_cameras}; "
                "use the same env.cameras as the model's ObsSpec"
            )
        images = rgb.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        features = F.adaptive_avg_pool2d(self.convs(images), self.side)  # [N*V, C, s, s]
        tokens = self.proj(features.flatten(2).transpose(1, 2)) + self.position
        tokens = tokens.view(n, v, self.tokens_per_camera, -1) + self.camera
        return tokens.flatten(1, 2)


class LanguageEncoder(nn.Module):
    def __init__(self, cfg: LanguageConfig, dim: int) -> None:
        super().__init__()
        self.tokenizer = InstructionTokenizer(
            cfg.tokenizer, cfg.vocab_size, cfg.max_tokens, cfg.cache_size
        )
        self.embed = nn.Embedding(self.tokenizer.vocab_size, dim, padding_idx=PAD_ID)
        self.position = nn.Parameter(torch.randn(cfg.max_tokens, dim) * 0.02)

    def forward(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """-> tokens [N, T, dim], valid [N, T] bool."""
        ids = self.tokenizer(texts, device)
        return self.embed(ids) + self.position, ids != PAD_ID


@dataclass
class PrefixTokens:
    tokens: torch.Tensor  # [N, L, d]; index 0 is the summary token
    valid: torch.Tensor  # [N, L] bool


def _as_tensor(value: object, name: str, device: torch.device) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"obs['{name}'] must be a tensor or array ({exc})") from None
    return value.to(device)


class ObservationTokenizer(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: ObsSpec) -> None:
        super().__init__()
        dim = cfg.d_model
        self.spec = spec
        self.summary = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.state = MLP(spec.state_dim, cfg.state_hidden, dim)
        self.vision = VisionEncoder(cfg.vision, len(spec.cameras), dim) if spec.has_rgb else None
        self.language = LanguageEncoder(cfg.language, dim)

    def forward(self, obs: dict[str, object]) -> PrefixTokens:
        device = self.summary.device
        if "state" not in obs:
            raise ConfigError("obs has no 'state' entry; every env obs dict must carry 'state'")
        state = _as_tensor(obs["state"], "state", device).float()
        n = state.shape[0]
        if state.shape[-1] != self.spec.state_dim:
            raise ConfigError(
                f"obs['state'] has {state.shape[-1]} dims but the policy expects "
                f"{self.spec.state_dim}; build the policy from this env's ObsSpec"
            )
        parts = [self.summary.expand(n, -1, -1), self.state(state)]
        parts[1] = parts[1].unsqueeze(1)
        if obs.get("rgb") is not None:
            if self.vision is None:
                raise ConfigError(
                    "obs has 'rgb' but the policy was built for a state-only ObsSpec (no cameras); "
                    "build it from the env's ObsSpec or use env.obs_mode=state"
                )
            parts.append(self.vision(_as_tensor(obs["rgb"], "rgb", device)))
        fixed = sum(p.shape[1] for p in parts)
        texts = obs.get("instruction")
        if texts is None:
            texts = [""] * n
        if not isinstance(texts, list | tuple) or len(texts) != n:
            raise ConfigError(f"obs['instruction'] must be a list of {n} strings")
        lang, lang_valid = self.language(list(texts), device)
        tokens = torch.cat([*parts, lang], dim=1)
        valid = torch.cat(
            [torch.ones(n, fixed, dtype=torch.bool, device=device), lang_valid], dim=1
        )
        return PrefixTokens(tokens, valid)

"""The VLM-like backbone shared by both policy families, and the value head on its pooled output.

The backbone runs a transformer over the prefix (summary, state, vision, language tokens) and,
for the token policy, over extra suffix tokens in the same pass with a block mask: prefix tokens
attend only to the prefix, suffix tokens attend to everything valid (pi0's blockwise attention,
OpenVLA-OFT's parallel action queries). The prefix output therefore never depends on the suffix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rl_post.envs.spec import ObsSpec
from rl_post.models.config import ModelConfig
from rl_post.models.encoders import ObservationTokenizer
from rl_post.models.transformer import MLP, Block


@dataclass
class BackboneOutput:
    prefix: torch.Tensor  # [N, L, d] prefix features
    prefix_valid: torch.Tensor  # [N, L] bool
    pooled: torch.Tensor  # [N, d] summary-token feature
    suffix: torch.Tensor | None  # [N, S, d] when suffix tokens were given
    state: torch.Tensor | None = None  # [N, state_dim] normalized proprioception (critic input)


def block_mask(prefix_valid: torch.Tensor, suffix_len: int) -> torch.Tensor:
    """Boolean attention mask [N, 1, L+S, L+S]: prefix -> valid prefix; suffix -> valid all."""
    n, length = prefix_valid.shape
    total = length + suffix_len
    key_valid = torch.cat(
        [prefix_valid, torch.ones(n, suffix_len, dtype=torch.bool, device=prefix_valid.device)], 1
    )
    mask = key_valid[:, None, None, :].expand(n, 1, total, total).clone()
    mask[:, :, :length, length:] = False
    return mask


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: ObsSpec) -> None:
        super().__init__()
        self.encode = ObservationTokenizer(cfg, spec)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.backbone_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, obs: dict[str, object], suffix: torch.Tensor | None = None) -> BackboneOutput:
        prefix = self.encode(obs)
        length = prefix.tokens.shape[1]
        x = prefix.tokens
        if suffix is not None:
            x = torch.cat([x, suffix.expand(x.shape[0], -1, -1)], dim=1)
        mask = block_mask(prefix.valid, 0 if suffix is None else suffix.shape[1])
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        return BackboneOutput(
            prefix=x[:, :length],
            prefix_valid=prefix.valid,
            pooled=x[:, 0],
            suffix=None if suffix is None else x[:, length:],
        )


class ValueHead(nn.Module):
    """V(obs) from the pooled backbone feature; `detach` keeps value gradients out of the backbone."""

    def __init__(self, dim: int, hidden: int, detach: bool) -> None:
        super().__init__()
        self.detach = detach
        self.mlp = MLP(dim, hidden, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.mlp(pooled.detach() if self.detach else pooled).squeeze(-1)


class StateValueHead(nn.Module):
    """V(obs) from the normalized state alone, by its own MLP (tanh, orthogonal init, as the
    ManiSkill / CleanRL PPO critic): an asymmetric critic that does not depend on features
    learned for imitation. Used with model.value_input=state."""

    def __init__(self, state_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        dims = [state_dim] + [hidden] * layers
        modules: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            linear = nn.Linear(d_in, d_out)
            nn.init.orthogonal_(linear.weight, gain=2**0.5)
            nn.init.zeros_(linear.bias)
            modules += [linear, nn.Tanh()]
        last = nn.Linear(dims[-1], 1)
        nn.init.orthogonal_(last.weight, gain=1.0)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*modules, last)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mlp(state).squeeze(-1)

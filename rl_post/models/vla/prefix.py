"""What one VLM pass over an observation's prefix leaves for the action expert's denoising steps
(the reference implementations' KV cache), shared by SmolVLA and pi0."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PrefixCache:
    keys: list[torch.Tensor]  # per VLM layer, rotated keys (layout is the family's own)
    values: list[torch.Tensor]  # per VLM layer
    pad: torch.Tensor  # [B, P] bool: valid prefix tokens
    hidden: torch.Tensor  # [B, P, d_vlm] final-normed prefix output (value head input)
    state: torch.Tensor | None = None  # [B, max_state_dim] normalized state (pi0's suffix token)

    def repeat(self, times: int) -> PrefixCache:
        """Each sample's cache `times` times in a row (sample-major): K denoising steps batched."""

        def rep(x: torch.Tensor) -> torch.Tensor:
            return x.repeat_interleave(times, dim=0)

        return PrefixCache(
            keys=[rep(k) for k in self.keys],
            values=[rep(v) for v in self.values],
            pad=rep(self.pad),
            hidden=self.hidden,
            state=None if self.state is None else rep(self.state),
        )

    def pooled(self) -> torch.Tensor:
        """Mean of the valid prefix outputs [B, d_vlm]."""
        weights = self.pad.to(self.hidden.dtype)[..., None]
        return (self.hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

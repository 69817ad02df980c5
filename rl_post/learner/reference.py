"""Frozen reference policy for the KL penalty: a snapshot that never trains."""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn


class FrozenReference:
    """Evaluation-only policy; `logprob` has no autograd graph. Takes ownership of `module`
    (pass a copy: see `snapshot`)."""

    def __init__(self, module: nn.Module, device: torch.device, autocast: torch.dtype | None):
        self.module = module.to(device)
        self.module.eval()
        self.module.requires_grad_(False)
        self._device = device
        self._autocast = autocast

    @torch.no_grad()
    def logprob(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> torch.Tensor:
        context = (
            torch.autocast(device_type=self._device.type, dtype=self._autocast)
            if self._autocast is not None
            else contextlib.nullcontext()
        )
        with context:
            return self.module.evaluate(obs, stored).logprob.float()

    @staticmethod
    def snapshot(policy: nn.Module) -> nn.Module:
        """Independent copy; take it before DeepSpeed wraps (and under ZeRO-3 partitions) the
        policy."""
        return copy.deepcopy(policy)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

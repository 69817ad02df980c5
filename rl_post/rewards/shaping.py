"""Reward shaping hooks.

Potential-based shaping (Ng, Harada & Russell, 1999) adds, for every decision s -> s',

    F(s, s') = gamma * Phi(s') - Phi(s),

with Phi(s') taken as 0 when s' is terminal (the episode terminated there; a time-limit truncation
is not terminal, the critic bootstraps through it). Summed over an episode the terms telescope to
gamma^T * Phi(s_T) - Phi(s_0), so the optimal policy of the shaped task is the optimal policy of
the original one: shaping can speed learning up but cannot change what is optimal. `gamma` must be
the discount the algorithm uses per decision (algo.gamma). The potential Phi is the learned success
classifier's probability or any user function `obs dict -> [B] tensor`.

A success bonus is different: a fixed reward added when a success event fires (true or predicted),
once per episode by default. It changes the task (it is a reward, not a potential difference).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from rl_post.config import ConfigError

Potential = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def potential_shaping(
    phi_start: torch.Tensor, phi_end: torch.Tensor, terminal: torch.Tensor, gamma: float
) -> torch.Tensor:
    """F = gamma * Phi(s') * (1 - terminal) - Phi(s), elementwise over any shape."""
    end = torch.where(terminal.bool(), torch.zeros_like(phi_end), phi_end)
    return gamma * end - phi_start


def first_events(
    events: torch.Tensor, done: torch.Tensor, already: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep only the first event of each episode in time-major [T, N] data.

    `already` [N] says which sub-envs' current episodes fired before this segment; `done` [T, N]
    ends an episode after its decision. Returns (first events [T, N], updated `already`)."""
    fired = already.clone()
    first = torch.zeros_like(events, dtype=torch.bool)
    for t in range(events.shape[0]):
        first[t] = events[t].bool() & ~fired
        fired = (fired | first[t]) & ~done[t].bool()
    return first, fired


def success_bonus(first_success: torch.Tensor, bonus: float) -> torch.Tensor:
    return bonus * first_success.float()


def resolve_potential(spec: str) -> Potential:
    """'package.module:function' -> the function (Phi of an obs dict, returning [B])."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ConfigError(
            f"reward.potential={spec!r} is not 'package.module:function'; use 'classifier' or a "
            "function taking an obs dict and returning a [B] tensor"
        )
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"reward.potential={spec!r} cannot be imported ({exc})") from None
    return func

"""Measurements the learner makes around an update: how far it moved the policy, how much signal
its gradient had, and how much of the exploration noise the likelihood sees.

- UpdateSizeProbe: before the update it picks `learner.post_update_samples` decisions of the
  batch (and the deterministic actions of `learner.action_change_samples` of them); after the
  update it re-evaluates them with the new weights: KL(old || new) per decision and per token,
  ratio spread, clip fraction, RMS change of the deterministic action (normalized units). The
  statistics the loss reports during the epochs are measured BEFORE each step, so with one epoch
  of one minibatch they are exactly KL 0 / ratio 1 whatever the step did; these are not. For a
  Gaussian policy (has_step_gaussians) it also keeps the rows' step Gaussians from before the
  update and reports the closed-form KL split into the means' and the stds' parts.
- gradient_snr_stats: SNR of the policy gradient of this batch from m disjoint splits that keep
  whole episodes / groups together (rl_post.algorithms.grad_snr).
- noise_share_stats: the policy's own estimate (Policy.noise_share) of the share of action
  variance that comes from likelihood-visible noise.
Every random choice uses the learner's diagnostics generator, so switching a diagnostic on or off
never changes the training stream.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from rl_post.algorithms.grad_snr import assign_splits, gradient_snr
from rl_post.algorithms.objective import policy_surrogate
from rl_post.algorithms.update_size import (
    finish_kl_parts,
    finish_update_size,
    kl_part_sums,
    rms_action_change,
    update_size_sums,
)
from rl_post.learner.minibatch import select_rows, to_device
from rl_post.models.policy import StepGaussians

if TYPE_CHECKING:
    from rl_post.learner.learner import Learner

SUM_KEYS = (
    "n_decisions",
    "sum_kl_k1",
    "sum_kl_k3",
    "n_tokens",
    "sum_kl_token_k3",
    "n_ratio",
    "sum_ratio",
    "sum_ratio_sq",
    "sum_clipped",
    "n_part_decisions",
    "n_part_tokens",
    "sum_kl_mean_part",
    "sum_kl_std_part",
)


def _chunks(index: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [index[i : i + size] for i in range(0, index.numel(), max(1, size))]


def normalized_actions(policy: nn.Module, actions: torch.Tensor) -> torch.Tensor:
    """Env-unit actions in the policy's normalized units (unchanged if it has no normalizer)."""
    normalizer = getattr(policy, "normalizer", None)
    return normalizer.normalize_action(actions) if normalizer is not None else actions


@torch.no_grad()
def deterministic_actions(
    policy: nn.Module, obs: dict[str, Any], seed: int, device: torch.device
) -> torch.Tensor:
    """act(mode=deterministic) with a fixed generator: the same call before and after an update
    differs only by the weights (the flow ODE starts from the same x_1)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    out = policy.act(obs, mode="deterministic", generator=generator)
    return normalized_actions(policy, out.actions.to(device).float())


@dataclass
class ProbeState:
    index: torch.Tensor  # this rank's rows of the batch
    batch: dict[str, Any]
    action_rows: torch.Tensor  # rows (subset of index) whose deterministic action is compared
    actions_before: torch.Tensor | None
    seed: int
    gaussians_before: list[StepGaussians] | None  # per chunk of index (kl_parts only)


@dataclass(frozen=True)
class UpdateSizeProbe:
    samples: int
    action_samples: int
    level: str
    clip_eps_low: float
    clip_eps_high: float
    kl_parts: bool  # the policy returns step Gaussians: measure the mean / std split of the KL

    @staticmethod
    def from_config(
        learner_cfg: Mapping[str, Any], algo_cfg: Mapping[str, Any], kl_parts: bool
    ) -> UpdateSizeProbe:
        return UpdateSizeProbe(
            samples=int(learner_cfg.get("post_update_samples", 512) or 0),
            action_samples=int(learner_cfg.get("action_change_samples", 64) or 0),
            level=str(algo_cfg["logprob_level"]),
            clip_eps_low=float(algo_cfg["clip_eps_low"]),
            clip_eps_high=float(algo_cfg["clip_eps_high"]),
            kl_parts=kl_parts,
        )

    @torch.no_grad()
    def _step_gaussians(
        self, learner: Learner, state_index: torch.Tensor, batch: dict[str, Any]
    ) -> list[StepGaussians]:
        learner.engine.eval()
        try:
            found = []
            for rows in _chunks(state_index, learner.micro_batch_size):
                part = to_device(select_rows(batch, rows), learner.device)
                gaussians = learner.engine(part["obs"], part["stored"])[3]
                if gaussians is None:
                    raise RuntimeError(
                        "the policy declares has_step_gaussians but its evaluate() returned none"
                    )
                found.append(gaussians)
            return found
        finally:
            learner.engine.train()

    def before(
        self,
        learner: Learner,
        batch: dict[str, Any],
        mask: torch.Tensor,
        generator: torch.Generator,
    ) -> ProbeState | None:
        if self.samples <= 0:
            return None
        candidates = (mask > 0).nonzero(as_tuple=True)[0]
        if candidates.numel() == 0:
            return None
        # Same generator state on every rank, so every rank draws the same rows.
        order = torch.randperm(candidates.numel(), generator=generator)
        chosen = candidates[order[: self.samples]]
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        index = chosen[learner.rank :: learner.world_size]
        action_rows = index[: self.action_samples]
        before = None
        can_act = learner.can_act_outside_engine and hasattr(learner.policy, "act")
        if action_rows.numel() > 0 and can_act:
            rows = to_device(select_rows(batch, action_rows), learner.device)
            before = deterministic_actions(learner.policy, rows["obs"], seed, learner.device)
        gaussians = self._step_gaussians(learner, index, batch) if self.kl_parts else None
        return ProbeState(index, batch, action_rows, before, seed, gaussians)

    @torch.no_grad()
    def after(self, learner: Learner, state: ProbeState | None) -> dict[str, float]:
        if state is None:
            return {}
        learner.engine.eval()
        sums = {k: 0.0 for k in SUM_KEYS}
        ratio_min, ratio_max = math.inf, -math.inf
        try:
            for chunk, rows in enumerate(_chunks(state.index, learner.micro_batch_size)):
                part = to_device(select_rows(state.batch, rows), learner.device)
                logprob, _, _, gaussians = learner.engine(part["obs"], part["stored"])
                if state.gaussians_before is not None:
                    parts = kl_part_sums(
                        state.gaussians_before[chunk], gaussians, part["mask"].float()
                    )
                    for key, value in parts.items():
                        sums[key] += value
                shard = update_size_sums(
                    logprob.float(),
                    part["logprob_old"].float(),
                    part["mask"].float(),
                    self.level,
                    self.clip_eps_low,
                    self.clip_eps_high,
                )
                for key, value in shard.items():
                    if key in sums:
                        sums[key] += value
                ratio_min = min(ratio_min, shard["ratio_min"])
                ratio_max = max(ratio_max, shard["ratio_max"])
            change = math.nan
            if state.actions_before is not None:
                rows = to_device(select_rows(state.batch, state.action_rows), learner.device)
                after = deterministic_actions(
                    learner.policy, rows["obs"], state.seed, learner.device
                )
                change = rms_action_change(state.actions_before, after)
        finally:
            learner.engine.train()
        sums, ratio_min, ratio_max = _reduce(learner, sums, ratio_min, ratio_max)
        sums.update(ratio_min=ratio_min, ratio_max=ratio_max)
        stats = finish_update_size(sums)
        if state.gaussians_before is not None:
            stats.update(finish_kl_parts(sums))
        # Each rank measured its own rows; rank 0's is reported (ranks agree in distribution).
        stats["post_action_change_rms"] = change
        return stats


def _reduce(
    learner: Learner, sums: dict[str, float], ratio_min: float, ratio_max: float
) -> tuple[dict[str, float], float, float]:
    if learner.world_size == 1:
        return sums, ratio_min, ratio_max
    packed = torch.tensor([sums[k] for k in SUM_KEYS], dtype=torch.float64, device=learner.device)
    dist.all_reduce(packed)
    low = torch.tensor([ratio_min], dtype=torch.float64, device=learner.device)
    high = torch.tensor([ratio_max], dtype=torch.float64, device=learner.device)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return dict(zip(SUM_KEYS, packed.tolist(), strict=True)), float(low), float(high)


def gradient_snr_stats(
    policy: nn.Module,
    params: list[nn.Parameter],
    batch: dict[str, Any],
    algo_cfg: Mapping[str, Any],
    num_splits: int,
    micro_batch_size: int,
    device: torch.device,
    generator: torch.Generator,
) -> dict[str, float]:
    """Gradient of the policy surrogate (policy parameters only) on `num_splits` disjoint parts of
    the batch at the current weights, and the SNR they imply for the whole batch. Samples that
    share batch["split_key"] (an episode, a GRPO group) stay in one part."""
    mask = batch["mask"].detach().float().cpu()
    rows = (mask > 0).nonzero(as_tuple=True)[0]
    keys = batch.get("split_key")
    keys = rows.clone() if keys is None else torch.as_tensor(keys).cpu()[rows]
    splits = assign_splits(keys, num_splits, generator)
    grads = []
    for split in range(num_splits):
        split_rows = rows[splits == split]
        total = [torch.zeros_like(p) for p in params]
        for part_rows in _chunks(split_rows, micro_batch_size):
            part = to_device(select_rows(batch, part_rows), device)
            new = policy.evaluate(part["obs"], part["stored"])
            loss = policy_surrogate(new.logprob.float(), part, algo_cfg)
            weight = float(part["mask"].sum()) / float(mask[split_rows].sum())
            pieces = torch.autograd.grad(loss * weight, params, allow_unused=True)
            for acc, piece in zip(total, pieces, strict=True):
                if piece is not None:
                    acc.add_(piece)
        grads.append(torch.cat([g.flatten() for g in total]))
    snr = gradient_snr(grads)
    decisions = float(rows.numel())
    return {
        "grad_snr": snr["snr"],
        "grad_snr_cosine": snr["cosine"],
        "grad_snr_signal": snr["signal"],
        "grad_snr_noise": snr["noise"],
        "grad_snr_units": float(torch.unique(keys).numel()),
        # SNR is linear in the batch size: decisions per update for SNR 1
        "grad_snr_batch_for_1": decisions / snr["snr"] if snr["snr"] > 0 else math.inf,
    }


@torch.no_grad()
def noise_share_stats(
    policy: nn.Module,
    batch: dict[str, Any],
    num_obs: int,
    num_initial: int,
    num_draws: int,
    device: torch.device,
    generator: torch.Generator,
) -> dict[str, float]:
    """Share of the action variance from likelihood-visible noise (Policy.noise_share), on
    `num_obs` observations of the batch; {} for policies that do not define it."""
    measure = getattr(policy, "noise_share", None)
    if measure is None or num_obs <= 0:
        return {}
    mask = batch["mask"].detach().float().cpu()
    rows = (mask > 0).nonzero(as_tuple=True)[0]
    if rows.numel() == 0:
        return {}
    chosen = rows[torch.randperm(rows.numel(), generator=generator)[:num_obs]]
    obs = to_device(select_rows(batch, chosen), device)["obs"]
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    draw = torch.Generator(device=device).manual_seed(seed)
    return {"noise_share": float(measure(obs, num_initial, num_draws, draw))}

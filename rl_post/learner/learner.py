"""DeepSpeed learner: epochs of minibatch updates on one rank of a data-parallel group.

A plain class (no Ray) so it runs in-process for the serial trainer and in tests; group.py wraps
it in Ray actors for several ranks. With world_size > 1 every rank receives the WHOLE batch and
works on its slice of each global minibatch (see minibatch.py), so N ranks compute the same update
as one rank up to float summation order.

Loss weighting: `loss_fn` returns a masked mean over the samples it is given. A micro-batch's loss
is scaled by (its mask sum / the global minibatch's mask sum) so the micro-batch gradients add up
to the gradient of the minibatch's masked mean; the extra factor world_size undoes DeepSpeed's
averaging of gradients across ranks, and we pass scale_wrt_gas=False so DeepSpeed does not divide
by the accumulation count again. This requires the loss to be a per-sample masked mean (no
statistics over the batch, e.g. advantage normalisation, inside the loss).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from rl_post.algorithms.update_size import adapt_lr, adaptive_kl_key
from rl_post.config import ConfigError
from rl_post.learner.diagnostics import (
    UpdateSizeProbe,
    gradient_snr_stats,
    noise_share_stats,
)
from rl_post.learner.distributed import ensure_process_group, quiet_deepspeed, resolve_backend
from rl_post.learner.ds_config import (
    autocast_dtype,
    build_deepspeed_config,
    optimizer_settings,
    require,
    resolve_precision,
    zero_stage,
)
from rl_post.learner.minibatch import (
    MicroBatchPlan,
    minibatch_layout,
    plan_micro_batches,
    select_rows,
    to_device,
)
from rl_post.learner.optimizer import GroupClippedAdamW
from rl_post.learner.reference import FrozenReference
from rl_post.models.policy import EvalOutput

LossFn = Callable[..., tuple[torch.Tensor, dict[str, Any]]]
BATCH_KEYS = ("obs", "stored", "logprob_old", "advantages", "returns", "values_old", "mask")
PUBLISH_MODES = ("trainable", "full")


class _EvaluateForward(nn.Module):
    """Routes DeepSpeed's forward (autocast, ZeRO-3 hooks) to the policy's `evaluate`."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, obs: dict[str, object], stored: dict[str, torch.Tensor]) -> tuple:
        out = self.policy.evaluate(obs, stored)
        return out.logprob, out.entropy, out.value, out.gaussians


def _default_loss_fn() -> LossFn:
    from rl_post.algorithms.objective import compute_loss

    return compute_loss


def split_param_groups(
    policy: nn.Module,
    value_names: list[str],
    lr: float,
    value_lr: float,
    policy_eps: float | None = None,
    max_grad_norm: float | None = None,
    value_max_grad_norm: float | None = None,
    noise_names: list[str] | None = None,
    noise_lr: float | None = None,
) -> list[dict[str, Any]]:
    """AdamW groups: value-head parameters (any dotted name component in `value_names`) get
    `value_lr`, everything else `lr`; each group is clipped to its own gradient norm. Frozen
    parameters are left out; empty groups are dropped.
    `policy_eps` (if set) overrides AdamW's eps for the policy group only: an eps far above the
    gradient RMS makes the policy step lr x m_hat / eps (momentum SGD) while the critic keeps Adam.
    `noise_lr` (if set) puts the parameters named by `noise_names` (a flow policy's learned
    exploration noise) in a third group, "noise", with plain Adam at that lr: under the policy
    group's momentum SGD their gradients are too small for sigma to move at all, while a Gaussian
    policy's log-std, under Adam, shrinks as it learns."""
    policy_params, value_params, noise_params = [], [], []
    split_noise = noise_lr is not None and bool(noise_names)
    for name, param in policy.named_parameters():
        if not param.requires_grad:
            continue
        parts = name.split(".")
        if any(part in value_names for part in parts):
            value_params.append(param)
        elif split_noise and any(part in (noise_names or []) for part in parts):
            noise_params.append(param)
        else:
            policy_params.append(param)
    policy_group: dict[str, Any] = {
        "params": policy_params,
        "lr": lr,
        "name": "policy",
        "max_grad_norm": max_grad_norm,
    }
    if policy_eps is not None:
        policy_group["eps"] = policy_eps
    value_group = {
        "params": value_params,
        "lr": value_lr,
        "name": "value",
        "max_grad_norm": value_max_grad_norm if value_max_grad_norm is not None else max_grad_norm,
    }
    noise_group = {
        "params": noise_params,
        "lr": noise_lr,
        "name": "noise",
        "max_grad_norm": max_grad_norm,
    }
    groups = [g for g in (policy_group, value_group, noise_group) if g["params"]]
    if not groups:
        raise ConfigError("the policy has no trainable parameters; nothing for the learner to do")
    return groups


def _optional_positive_algo(cfg: Mapping[str, Any], key: str) -> float | None:
    value = cfg.get(key)
    if value is None or float(value) == 0.0:
        return None
    if float(value) < 0:
        raise ConfigError(f"algo.{key}={value} must be > 0 (or null: off)")
    return float(value)


def _optional_positive(cfg: Mapping[str, Any], key: str) -> float | None:
    value = cfg.get(key)
    if value is None:
        return None
    if float(value) <= 0:
        raise ConfigError(f"learner.{key}={value} must be > 0 (or null to use learner.adam_eps)")
    return float(value)


class Learner:
    def __init__(
        self,
        policy: nn.Module,
        algo_cfg: Mapping[str, Any],
        learner_cfg: Mapping[str, Any],
        rank: int = 0,
        world_size: int = 1,
        ref_policy: nn.Module | None = None,
        loss_fn: LossFn | None = None,
    ):
        import deepspeed

        quiet_deepspeed(str(learner_cfg.get("log_level", "warning")))
        self.rank, self.world_size = rank, world_size
        self._algo_cfg, self._learner_cfg = algo_cfg, learner_cfg
        self._loss_fn = loss_fn or _default_loss_fn()
        self._policy = policy
        self._epochs = int(require(algo_cfg, "update_epochs", "algo"))
        self._num_minibatches = int(require(algo_cfg, "num_minibatches", "algo"))
        self._micro_batch_size = int(require(learner_cfg, "micro_batch_size", "learner"))
        accum = learner_cfg.get("gradient_accumulation")
        self._grad_accum_cfg = None if accum is None else int(accum)
        self._publish = str(learner_cfg.get("publish", "trainable"))
        if self._publish not in PUBLISH_MODES:
            raise ConfigError(
                f"learner.publish '{self._publish}' is not valid; valid choices: "
                + ", ".join(PUBLISH_MODES)
            )

        backend = resolve_backend(str(require(learner_cfg, "dist_backend", "learner")))
        ensure_process_group(
            backend, rank, world_size, str(learner_cfg.get("master_addr", "127.0.0.1"))
        )
        self.precision = resolve_precision(
            str(require(learner_cfg, "precision", "learner")), on_gpu=backend == "nccl"
        )
        lr = float(require(algo_cfg, "lr", "algo"))
        value_lr = algo_cfg.get("value_lr")
        max_norm = _optional_positive_algo(algo_cfg, "max_grad_norm")
        noise_lr = _optional_positive_algo(algo_cfg, "noise_lr")
        groups = split_param_groups(
            policy,
            list(learner_cfg.get("value_param_names", ["value_head"])),
            lr,
            float(value_lr) if value_lr is not None else lr,
            policy_eps=_optional_positive(learner_cfg, "policy_adam_eps"),
            max_grad_norm=max_norm,
            value_max_grad_norm=_optional_positive_algo(algo_cfg, "value_max_grad_norm"),
            noise_names=list(learner_cfg.get("noise_param_names", ["noise_head"])),
            noise_lr=noise_lr,
        )
        # the noise group's lr is fixed (the adaptive lr steers the policy group only); like the
        # policy group it is scaled by policy_lr_scale, so a critic warm-up leaves sigma alone
        self._noise_lr = noise_lr
        self._policy_lr = lr  # the adaptive lr moves this; policy_lr_scale multiplies it per call
        self._target_kl = _optional_positive_algo(algo_cfg, "target_kl")
        self._kl_grain = str(algo_cfg.get("kl_grain", "decision"))
        adaptive = algo_cfg.get("adaptive_lr") or {}
        self._adaptive = dict(adaptive) if adaptive.get("enabled") else None
        has_gaussians = bool(getattr(policy, "has_step_gaussians", False))
        self._probe = UpdateSizeProbe.from_config(learner_cfg, algo_cfg, kl_parts=has_gaussians)
        if self._adaptive is not None and self._probe.samples <= 0:
            raise ConfigError(
                "algo.adaptive_lr needs the post-update KL: set learner.post_update_samples > 0"
            )
        self._steer_key = adaptive_kl_key(self._kl_grain, adaptive.get("kl_part", "total"))
        if self._adaptive is not None and self._steer_key.endswith("_part") and not has_gaussians:
            raise ConfigError(
                "algo.adaptive_lr.kl_part=mean splits the KL of Gaussian steps, and model "
                f"'{getattr(policy, 'kind', type(policy).__name__)}' has none (e.g. a token policy); "
                "use algo.adaptive_lr.kl_part=total"
            )
        self._snr_every = int(learner_cfg.get("grad_snr_every", 0) or 0)
        self._snr_splits = int(learner_cfg.get("grad_snr_splits", 2))
        self._noise_share_every = int(learner_cfg.get("noise_share_every", 0) or 0)
        self._noise_share_sizes = (
            int(learner_cfg.get("noise_share_obs", 8)),
            int(learner_cfg.get("noise_share_initial", 4)),
            int(learner_cfg.get("noise_share_draws", 8)),
        )
        kl_coef = float(algo_cfg.get("kl_coef") or 0.0)
        # Snapshot before DeepSpeed touches the module (ZeRO-3 partitions it in place).
        reference_source = ref_policy if ref_policy is not None else policy
        reference_snapshot = FrozenReference.snapshot(reference_source) if kl_coef > 0 else None

        self._zero_stage = zero_stage(learner_cfg)
        optimizer = GroupClippedAdamW(
            groups, **optimizer_settings(learner_cfg, algo_cfg, on_gpu=backend == "nccl")
        )
        optimizer.partitioned = self._zero_stage >= 1 and world_size > 1
        initial_accum = self._grad_accum_cfg or 1
        ds_config = build_deepspeed_config(
            learner_cfg,
            precision=self.precision,
            world_size=world_size,
            micro_size=self._micro_batch_size,
            grad_accum=initial_accum,
        )
        started = time.perf_counter()
        self.engine, _, _, _ = deepspeed.initialize(
            model=_EvaluateForward(policy), optimizer=optimizer, config=ds_config
        )
        self.engine_init_seconds = time.perf_counter() - started
        self._optimizer = optimizer  # the torch optimizer DeepSpeed steps (maybe inside ZeRO's)
        self.optimizer = self.engine.optimizer
        self.device = self.engine.device
        self.reference = (
            FrozenReference(reference_snapshot, self.device, autocast_dtype(self.precision))
            if reference_snapshot is not None
            else None
        )
        self._generator = torch.Generator().manual_seed(int(learner_cfg.get("shuffle_seed", 0)))
        # Diagnostics draw from their own stream so switching them on never changes training.
        self._diag_generator = torch.Generator().manual_seed(
            int(learner_cfg.get("shuffle_seed", 0)) + 1
        )
        self.num_updates = 0  # optimizer steps taken
        self.num_update_calls = 0
        self._warming_up = False  # the last update was critic-only (policy_lr_scale == 0)
        self._phase_s: dict[str, float] = {}  # seconds per phase of the current update

    # ---------------------------------------------------------------- update
    def _set_policy_lrs(self, scale: float) -> None:
        """Policy group at the (adaptive) policy lr, noise group at its fixed lr, both x scale."""
        for group in self.optimizer.param_groups:
            if group.get("name") == "policy":
                group["lr"] = self._policy_lr * scale
            elif group.get("name") == "noise" and self._noise_lr is not None:
                group["lr"] = self._noise_lr * scale

    def update(self, batch: dict[str, Any], policy_lr_scale: float = 1.0) -> dict[str, float]:
        """algo.update_epochs passes of algo.num_minibatches optimizer steps over `batch`.

        policy_lr_scale multiplies the policy learning rate for this call only; 0 fits the critic
        alone (critic warm-up: a fresh value head must not steer the policy of an SFT checkpoint):
        the policy terms leave the loss, and the first update after warm-up starts the policy
        group's AdamW moments afresh.

        algo.target_kl stops the epochs at the first minibatch whose KL(old || new) per decision,
        measured before its step, exceeds the target (that step is not taken). After the update
        the learner re-evaluates `learner.post_update_samples` decisions of the batch and reports
        the true post-update KL, ratio spread, clip fraction and deterministic-action change
        (post_*); with algo.adaptive_lr the policy lr then moves toward its KL target.

        batch: "obs" (dict of [B, ...] tensors, "instruction" list[str]), "stored" (dict of
        [B, ...]), logprob_old [B, H, A], advantages [B], returns [B], values_old [B], mask [B],
        optionally "split_key" [B] (episode / group of each decision, for the gradient SNR).
        With world_size > 1 every rank must be given the same, whole batch. Returns the mean
        loss statistics plus grad_norm / grad_norm_policy / grad_norm_value (pre-clip), lr /
        lr_value, num_updates (optimizer steps so far), epochs_run, early_stopped,
        skipped_minibatches (all-masked), micro_batches_per_step, micro_batch_size.
        """
        missing = [k for k in BATCH_KEYS if k not in batch]
        if missing:
            raise KeyError(f"update batch lacks {missing}; it needs {list(BATCH_KEYS)}")
        mask = batch["mask"].detach().float().cpu()
        plan = plan_micro_batches(
            mask.shape[0],
            self._num_minibatches,
            self.world_size,
            self._micro_batch_size,
            self._grad_accum_cfg,
        )
        self._apply_plan(plan)
        critic_only = float(policy_lr_scale) == 0.0
        self._phase_s = {}
        update_start = time.perf_counter()
        diagnostics: dict[str, float] = {}
        if self._warming_up and not critic_only:
            diagnostics["policy_optimizer_reset"] = float(
                self._optimizer.reset_group_state("policy")
                + self._optimizer.reset_group_state("noise")
            )
        self._warming_up = critic_only
        calls = self.num_update_calls
        if self._snr_every > 0 and calls % self._snr_every == 0 and not critic_only:
            with self._phase("grad_snr"):
                diagnostics.update(self._measure_gradient_snr(batch))
        if self._noise_share_every > 0 and calls % self._noise_share_every == 0:
            with self._phase("noise_share"):
                diagnostics.update(
                    noise_share_stats(
                        self._policy,
                        batch,
                        *self._noise_share_sizes,
                        self.device,
                        self._diag_generator,
                    )
                    if self.can_act_outside_engine
                    else {}
                )
        with self._phase("post_update_probe"):
            probe_state = self._probe.before(self, batch, mask, self._diag_generator)

        self.engine.train()
        self._set_policy_lrs(float(policy_lr_scale))
        result = self._run_epochs(batch, mask, plan, critic_only)
        with self._phase("post_update_probe"):
            result.update(self._probe.after(self, probe_state))
        if self._adaptive is not None and not critic_only:
            self._policy_lr = adapt_lr(
                self._policy_lr,
                result.get(self._steer_key, math.nan),
                float(self._adaptive["target_kl"]),
                float(self._adaptive["factor"]),
                float(self._adaptive["min_lr"]),
                float(self._adaptive["max_lr"]),
            )
        self._set_policy_lrs(1.0)
        result["lr_next"] = self._policy_lr
        result["policy_lr_scale"] = float(policy_lr_scale)
        result.update(diagnostics)
        result.update({f"time_{name}_s": seconds for name, seconds in self._phase_s.items()})
        result["time_update_s"] = time.perf_counter() - update_start
        return result

    def _run_epochs(
        self, batch: dict[str, Any], mask: torch.Tensor, plan: MicroBatchPlan, critic_only: bool
    ) -> dict[str, float]:
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}
        group_norms: dict[str, list[float]] = {}
        skipped = 0
        epochs_run = 0
        early_stopped = False
        for _ in range(self._epochs):
            if early_stopped:
                break
            epochs_run += 1
            permutation = torch.randperm(mask.shape[0], generator=self._generator)
            indices, valid = minibatch_layout(permutation, plan)
            for mb in range(plan.num_minibatches):
                mb_weight = (mask[indices[mb]] * valid[mb]).sum()
                if mb_weight <= 0:  # every rank sees the same sum, so all skip together
                    skipped += 1
                    continue
                self._optimizer.group_norms = {}
                kl_sum = 0.0
                for micro in range(plan.grad_accum):
                    index = indices[mb, self.rank, micro]
                    micro_mask = mask[index] * valid[mb, self.rank, micro]
                    share = float(micro_mask.sum() / mb_weight)
                    stats, kl_share = self._micro_step(
                        batch, index, micro_mask, share, micro, plan, critic_only, kl_sum
                    )
                    kl_sum += kl_share
                    for key, value in stats.items():
                        weights[key] = weights.get(key, 0.0) + (
                            share if math.isfinite(value) else 0.0
                        )
                        if math.isfinite(value):
                            sums[key] = sums.get(key, 0.0) + value * share
                early_stopped = self._optimizer.skip
                self._optimizer.skip = False
                if early_stopped:
                    break
                for name, norm in self._optimizer.group_norms.items():
                    group_norms.setdefault(name, []).append(norm)
                self.num_updates += 1
        result = self._reduce_stats(sums, weights)
        for name, norms in group_norms.items():
            result[f"grad_norm_{name}"] = sum(norms) / len(norms)
        if group_norms:
            steps = len(next(iter(group_norms.values())))
            result["grad_norm"] = (
                sum(
                    math.sqrt(sum(group_norms[name][i] ** 2 for name in group_norms))
                    for i in range(steps)
                )
                / steps
            )
        for group in self.optimizer.param_groups:
            result["lr" if group.get("name") == "policy" else f"lr_{group.get('name')}"] = float(
                group["lr"]
            )
        self.num_update_calls += 1
        result.update(
            num_updates=float(self.num_updates),
            epochs_run=float(epochs_run),
            early_stopped=float(early_stopped),
            skipped_minibatches=float(skipped),
            micro_batches_per_step=float(plan.grad_accum),
            micro_batch_size=float(plan.micro_size),
        )
        return result

    def _apply_plan(self, plan: MicroBatchPlan) -> None:
        # DeepSpeed only uses these for bookkeeping (samples seen); we mark boundaries ourselves.
        self.engine.set_train_micro_batch_size(plan.micro_size)
        self.engine.set_train_batch_size(plan.micro_size * plan.grad_accum * plan.world_size)

    def _micro_step(
        self,
        batch: dict[str, Any],
        index: torch.Tensor,
        micro_mask: torch.Tensor,
        share: float,
        micro: int,
        plan: MicroBatchPlan,
        critic_only: bool,
        kl_so_far: float,
    ) -> tuple[dict[str, float], float]:
        """Forward, loss, backward and (at the minibatch boundary) the optimizer step of one
        micro-batch. Returns its statistics and its share-weighted pre-step KL per decision."""
        with self._phase("data"):
            micro_batch = to_device(select_rows(batch, index), self.device)
            micro_batch["mask"] = micro_mask.to(self.device)
        last = micro == plan.grad_accum - 1
        self.engine.set_gradient_accumulation_boundary(last)
        with self._phase("forward"):
            logprob, entropy, value, _ = self.engine(micro_batch["obs"], micro_batch["stored"])
        loss_start = time.perf_counter()
        stats: dict[str, float] = {}
        kl_share = 0.0
        if share > 0:
            new = EvalOutput(logprob=logprob.float(), entropy=entropy.float(), value=value)
            if value is not None:
                new.value = value.float()
            ref_logprob = (
                self.reference.logprob(micro_batch["obs"], micro_batch["stored"])
                if self.reference is not None
                else None
            )
            loss, raw_stats = self._loss_fn(
                new, micro_batch, self._algo_cfg, ref_logprob=ref_logprob, critic_only=critic_only
            )
            scaled = loss * (share * self.world_size)
            stats = {k: float(v) for k, v in raw_stats.items()}
            kl = stats.get("kl_decision" if self._kl_grain == "decision" else "kl_token", math.nan)
            kl_share = share * kl if math.isfinite(kl) else 0.0
        else:
            # Zero-weight micro-batch (all padding / masked): still run backward so every rank
            # makes the same collective calls.
            outputs = [t for t in (logprob, entropy, value) if t is not None]
            scaled = sum(t.float().sum() for t in outputs) * 0.0
        if last and self._target_kl is not None and not critic_only:
            minibatch_kl = self._all_reduce_sum(kl_so_far + kl_share)
            # The step this minibatch would take starts from a policy already this far from the
            # behaviour policy: stop here, before moving further (CleanRL / ManiSkill PPO).
            self._optimizer.skip = minibatch_kl > self._target_kl
        self._phase_s["loss"] = self._phase_s.get("loss", 0.0) + time.perf_counter() - loss_start
        with self._phase("backward"):
            self.engine.backward(scaled, scale_wrt_gas=False)
        with self._phase("optimizer"):
            self.engine.step()
        return stats, kl_share

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Adds the block's wall-clock seconds to this update's `time_<name>_s` statistic."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._phase_s[name] = self._phase_s.get(name, 0.0) + time.perf_counter() - start

    def _all_reduce_sum(self, value: float) -> float:
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def _reduce_stats(self, sums: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
        """Weighted mean of each statistic over every micro-batch of every rank. A micro-batch
        weighs its share of its minibatch's mask, so linear statistics (losses, entropy) are
        exactly the minibatch values averaged over optimizer steps; non-finite values (e.g.
        explained variance of a constant slice) are left out, nan only if none is finite."""
        keys = sorted(weights)
        if self.world_size > 1:
            gathered: list[list[str]] = [[] for _ in range(self.world_size)]
            dist.all_gather_object(gathered, keys)
            keys = sorted({k for rank_keys in gathered for k in rank_keys})
            packed = [sums.get(k, 0.0) for k in keys] + [weights.get(k, 0.0) for k in keys]
            values = torch.tensor(packed, dtype=torch.float64, device=self.device)
            dist.all_reduce(values)
            totals = values.cpu().tolist()
            sums = dict(zip(keys, totals[: len(keys)], strict=True))
            weights = dict(zip(keys, totals[len(keys) :], strict=True))
        return {k: sums.get(k, 0.0) / weights[k] if weights[k] > 0 else math.nan for k in keys}

    def _measure_gradient_snr(self, batch: dict[str, Any]) -> dict[str, float]:
        if self._zero_stage == 3:
            raise ConfigError(
                "learner.grad_snr_every needs whole parameters on each rank; it does not work "
                "with learner.zero_stage=3 (use 0-2 for the diagnostic run)"
            )
        value_names = list(self._learner_cfg.get("value_param_names", ["value_head"]))
        policy_params = [
            p
            for n, p in self._policy.named_parameters()
            if p.requires_grad and not any(part in value_names for part in n.split("."))
        ]
        return gradient_snr_stats(
            self._policy,
            policy_params,
            batch,
            self._algo_cfg,
            self._snr_splits,
            self._micro_batch_size,
            self.device,
            self._diag_generator,
        )

    @property
    def policy(self) -> nn.Module:
        return self._policy

    @property
    def micro_batch_size(self) -> int:
        return self._micro_batch_size

    @property
    def can_act_outside_engine(self) -> bool:
        """Whether the policy's own act() works on this rank (ZeRO-3 partitions parameters)."""
        return self._zero_stage != 3

    # ---------------------------------------------------------------- weights
    def policy_state(self, full: bool = False) -> dict[str, torch.Tensor]:
        """CPU copy of the weights to publish to rollout workers (every rank must call it under
        ZeRO-3, where parameters are gathered collectively). `full=True` returns the whole
        state_dict (frozen parameters and buffers such as normalization statistics too): what a
        worker needs once after a resume, when it was built from a fresh initialisation."""
        named = dict(self._policy.named_parameters())
        if self._publish == "trainable" and not full:
            names = [n for n, p in named.items() if p.requires_grad]
            tensors = {n: named[n] for n in names}
        else:
            tensors = dict(self._policy.state_dict(keep_vars=True))
        if self._zero_stage == 3:
            import deepspeed

            params = [t for t in tensors.values() if isinstance(t, nn.Parameter)]
            with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                return {n: t.detach().to("cpu", copy=True) for n, t in tensors.items()}
        return {n: t.detach().to("cpu", copy=True) for n, t in tensors.items()}

    # ---------------------------------------------------------------- checkpoint
    def save(self, path: str | Path) -> None:
        """DeepSpeed checkpoint (weights, optimizer, engine counters) + learner counters, the
        shuffle generator and the frozen reference. Collective: every rank must call it."""
        client_state = {
            "num_updates": self.num_updates,
            "num_update_calls": self.num_update_calls,
            "shuffle_generator": self._generator.get_state(),
            "diagnostics_generator": self._diag_generator.get_state(),
            "policy_lr": self._policy_lr,
            "warming_up": self._warming_up,
        }
        if self.reference is not None:
            client_state["reference"] = self.reference.state_dict()
        self.engine.save_checkpoint(str(path), client_state=client_state)

    def load(self, path: str | Path) -> None:
        load_path, client_state = self.engine.load_checkpoint(str(path))
        if load_path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint found under {path}")
        self.num_updates = int(client_state["num_updates"])
        self.num_update_calls = int(client_state["num_update_calls"])
        self._generator.set_state(client_state["shuffle_generator"])
        self._diag_generator.set_state(client_state["diagnostics_generator"])
        self._policy_lr = float(client_state["policy_lr"])
        self._warming_up = bool(client_state["warming_up"])
        for group in self.optimizer.param_groups:
            if group.get("name") == "policy":
                group["lr"] = self._policy_lr
        if self.reference is not None and "reference" in client_state:
            self.reference.load_state_dict(client_state["reference"])

"""How one update batch becomes epochs x minibatches x ranks x micro-batches.

Every rank holds the whole batch and draws the same seeded permutation, so global minibatch i is
the same set of samples on every rank and rank r works on its own slice of it. Minibatches are
padded up to ranks * micro-batches * micro-size with zero-weight rows so uneven batch sizes (e.g.
after GRPO drops groups) still split exactly; padding is spread over the slots so no rank gets a
run of empty micro-batches while another does all the work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MicroBatchPlan:
    num_minibatches: int
    world_size: int
    grad_accum: int  # micro-batches per optimizer step on each rank
    micro_size: int  # samples per micro-batch (padding included)

    @property
    def minibatch_slots(self) -> int:
        return self.world_size * self.grad_accum * self.micro_size


def plan_micro_batches(
    batch_size: int,
    num_minibatches: int,
    world_size: int,
    micro_batch_size: int,
    grad_accum: int | None,
) -> MicroBatchPlan:
    """Choose the accumulation count and micro-batch size for one update.

    With `grad_accum=None` the count is the smallest one that keeps micro-batches at or under
    `micro_batch_size`; an explicit count is honoured and sets the micro-batch size instead.
    """
    if batch_size < num_minibatches * world_size:
        raise ValueError(
            f"a batch of {batch_size} samples cannot fill {num_minibatches} minibatches on "
            f"{world_size} rank(s); lower algo.num_minibatches or learner.num_ranks, or collect "
            "more samples per update"
        )
    if micro_batch_size < 1 or (grad_accum is not None and grad_accum < 1):
        raise ValueError("learner.micro_batch_size and learner.gradient_accumulation must be >= 1")
    per_rank = math.ceil(math.ceil(batch_size / num_minibatches) / world_size)
    accum = grad_accum if grad_accum is not None else math.ceil(per_rank / micro_batch_size)
    accum = min(accum, per_rank)  # never plan micro-batches that could only hold padding
    micro = math.ceil(per_rank / accum)
    return MicroBatchPlan(num_minibatches, world_size, accum, micro)


def minibatch_layout(
    permutation: torch.Tensor, plan: MicroBatchPlan
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample indices and validity, both [minibatches, ranks, grad_accum, micro_size].

    Padding slots hold index 0 (any real row works: their weight is zero) and valid=False.
    """
    slots = plan.world_size * plan.grad_accum
    indices, valid = [], []
    for chunk in torch.tensor_split(permutation, plan.num_minibatches):
        padded = torch.zeros(plan.minibatch_slots, dtype=torch.long)
        padded[: chunk.numel()] = chunk
        is_real = torch.zeros(plan.minibatch_slots, dtype=torch.bool)
        is_real[: chunk.numel()] = True
        # Fill row-major over [micro_size, slots] then transpose: real samples go round-robin
        # across (rank, micro-batch) slots, so padding ends up spread thinly.
        shape = (plan.micro_size, slots)
        indices.append(padded.reshape(shape).T.reshape(plan.world_size, plan.grad_accum, -1))
        valid.append(is_real.reshape(shape).T.reshape(plan.world_size, plan.grad_accum, -1))
    return torch.stack(indices), torch.stack(valid)


def select_rows(batch: dict[str, object], index: torch.Tensor) -> dict[str, object]:
    """Rows `index` of a (possibly nested) batch of [B, ...] tensors and length-B lists."""
    out: dict[str, object] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.index_select(0, index.to(value.device))
        elif isinstance(value, dict):
            out[key] = select_rows(value, index)
        elif isinstance(value, list | tuple):
            out[key] = [value[i] for i in index.tolist()]
        else:
            out[key] = value
    return out


def to_device(batch: dict[str, object], device: torch.device) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, dict):
            out[key] = to_device(value, device)
        else:
            out[key] = value
    return out

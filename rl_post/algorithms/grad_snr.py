"""Signal-to-noise ratio of a batch gradient, from the gradients of m disjoint splits of the batch.

Each split gradient g_i is an unbiased estimate of the true gradient G with noise covariance
Sigma * m / B. With the split mean g = mean_i g_i and s^2 = sum_i |g_i - g|^2 / (m - 1):
    noise of the full-batch gradient   N = E|g - G|^2 = s^2 / m        (unbiased)
    signal                             S = |G|^2      = |g|^2 - s^2/m  (unbiased)
    SNR of the full batch              S / N
For m = 2 this is S = g_1 . g_2 and N = |g_1 - g_2|^2 / 4. The SNR grows linearly with the batch
size, so `batch * 1 / SNR` estimates the batch that gives SNR 1. Splits must hold whole groups /
episodes (correlated samples in both halves would fake a signal); the caller chooses the split key.
"""

from __future__ import annotations

import math

import torch


def gradient_snr(split_grads: list[torch.Tensor]) -> dict[str, float]:
    """split_grads: m >= 2 flat gradient vectors of equal length. Returns signal, noise, snr,
    the mean pairwise cosine between splits, and the norm of the mean gradient."""
    if len(split_grads) < 2:
        raise ValueError(f"gradient SNR needs at least 2 splits, got {len(split_grads)}")
    grads = torch.stack([g.double().flatten() for g in split_grads])
    m = grads.shape[0]
    mean = grads.mean(dim=0)
    spread = ((grads - mean) ** 2).sum() / (m - 1)
    noise = float(spread / m)
    signal = float(mean.pow(2).sum()) - noise
    norms = grads.norm(dim=1)
    cosines = []
    for i in range(m):
        for j in range(i + 1, m):
            denom = float(norms[i] * norms[j])
            cosines.append(float(grads[i] @ grads[j]) / denom if denom > 0 else math.nan)
    return {
        "signal": signal,
        "noise": noise,
        "snr": signal / noise if noise > 0 else math.nan,
        "cosine": sum(cosines) / len(cosines),
        "mean_grad_norm": float(mean.norm()),
    }


def assign_splits(keys: torch.Tensor, num_splits: int, generator: torch.Generator) -> torch.Tensor:
    """[B] split index per sample so that all samples sharing a key land in the same split and
    the distinct keys are spread evenly (random order) over `num_splits`."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    if unique.numel() < num_splits:
        raise ValueError(
            f"cannot split {unique.numel()} independent units (episodes / groups) into "
            f"{num_splits} parts; collect a larger batch or use fewer splits"
        )
    order = torch.randperm(unique.numel(), generator=generator)
    split_of_unit = torch.empty_like(order)
    split_of_unit[order] = torch.arange(unique.numel()) % num_splits
    return split_of_unit[inverse]

"""How well a reward model's success predictions agree with the simulator's true success.

Pure functions over flat arrays: `probs` are predicted success probabilities in [0, 1], `labels`
the true success (bool / 0-1) of the same decisions or episodes. A metric that is undefined for
the given data (precision with no predicted positive, recall or AUROC without both classes)
returns None; callers leave it out of logs rather than writing a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


def _as_bool(values: ArrayLike) -> np.ndarray:
    return np.asarray(values).astype(bool).reshape(-1)


def _as_float(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def precision(predicted: ArrayLike, labels: ArrayLike) -> float | None:
    """TP / (TP + FP): the share of predicted successes that are true successes."""
    pred, true = _as_bool(predicted), _as_bool(labels)
    predicted_positive = int(pred.sum())
    if predicted_positive == 0:
        return None
    return float((pred & true).sum() / predicted_positive)


def recall(predicted: ArrayLike, labels: ArrayLike) -> float | None:
    """TP / (TP + FN): the share of true successes the model finds."""
    pred, true = _as_bool(predicted), _as_bool(labels)
    positives = int(true.sum())
    if positives == 0:
        return None
    return float((pred & true).sum() / positives)


def average_ranks(values: ArrayLike) -> np.ndarray:
    """1-based ranks of `values`; tied values share the mean of the ranks they span."""
    x = _as_float(values)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def auroc(scores: ArrayLike, labels: ArrayLike) -> float | None:
    """Area under the ROC curve via the Mann-Whitney U statistic: the probability that a random
    positive scores higher than a random negative, ties counting one half."""
    true = _as_bool(labels)
    num_pos = int(true.sum())
    num_neg = len(true) - num_pos
    if num_pos == 0 or num_neg == 0:
        return None
    ranks = average_ranks(scores)
    u = ranks[true].sum() - num_pos * (num_pos + 1) / 2.0
    return float(u / (num_pos * num_neg))


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_prob: float | None  # None for an empty bin
    success_rate: float | None


def reliability_table(probs: ArrayLike, labels: ArrayLike, num_bins: int) -> list[ReliabilityBin]:
    """Equal-width probability bins [i/B, (i+1)/B); the last bin includes 1.0."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    p, true = _as_float(probs), _as_bool(labels)
    index = np.clip(np.floor(p * num_bins).astype(np.int64), 0, num_bins - 1)
    table = []
    for b in range(num_bins):
        members = index == b
        count = int(members.sum())
        table.append(
            ReliabilityBin(
                low=b / num_bins,
                high=(b + 1) / num_bins,
                count=count,
                mean_prob=float(p[members].mean()) if count else None,
                success_rate=float(true[members].mean()) if count else None,
            )
        )
    return table


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, num_bins: int) -> float | None:
    """ECE = sum over bins of (bin count / total) * |mean predicted prob - observed success rate|."""
    total = len(_as_float(probs))
    if total == 0:
        return None
    return float(
        sum(
            b.count / total * abs(b.mean_prob - b.success_rate)  # type: ignore[operator]
            for b in reliability_table(probs, labels, num_bins)
            if b.count
        )
    )


def agreement_metrics(
    probs: ArrayLike, labels: ArrayLike, threshold: float, num_bins: int, prefix: str = "reward/"
) -> dict[str, float]:
    """Every agreement metric for one batch, keyed for logging; undefined ones are left out."""
    p, true = _as_float(probs), _as_bool(labels)
    if len(p) != len(true):
        raise ValueError(f"probs ({len(p)}) and labels ({len(true)}) differ in length")
    if len(p) == 0:
        return {}
    predicted = p > threshold
    values = {
        "precision": precision(predicted, true),
        "recall": recall(predicted, true),
        "auroc": auroc(p, true),
        "ece": expected_calibration_error(p, true, num_bins),
        "true_success_rate": float(true.mean()),
        "predicted_success_rate": float(predicted.mean()),
        "mean_prob": float(p.mean()),
    }
    return {f"{prefix}{k}": v for k, v in values.items() if v is not None}

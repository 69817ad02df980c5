"""Success-rate statistics for evaluation reports: Wilson score intervals and per-task summaries."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from rl_post.envs.spec import EpisodeStats

SUCCESS_METRICS = ("success_once", "success_at_end")


def normal_quantile(confidence: float) -> float:
    """Two-sided z for a central `confidence` interval (e.g. 0.95 -> 1.959964)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is not degenerate at 0/n or n/n,
    which matters for the small episode counts of robot evaluations. With no trials nothing is
    known, so the interval is the whole [0, 1].
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    z = normal_quantile(confidence)
    p = successes / trials
    z2n = z * z / trials
    center = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / trials + z2n / (4.0 * trials))
    return max(0.0, center - half), min(1.0, center + half)


@dataclass
class SuccessSummary:
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_length: float
    mean_return: float
    # share of episodes that reached each of the task's info flags (EpisodeStats.milestones)
    milestones: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(
    episodes: Iterable[EpisodeStats], metric: str = "success_once", confidence: float = 0.95
) -> SuccessSummary:
    if metric not in SUCCESS_METRICS:
        raise ValueError(f"unknown success metric '{metric}'; valid: {', '.join(SUCCESS_METRICS)}")
    eps = list(episodes)
    n = len(eps)
    k = sum(bool(getattr(e, metric)) for e in eps)
    low, high = wilson_interval(k, n, confidence)
    return SuccessSummary(
        episodes=n,
        successes=k,
        success_rate=k / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        mean_length=sum(e.length for e in eps) / n if n else 0.0,
        mean_return=sum(e.episode_return for e in eps) / n if n else 0.0,
        milestones=milestone_shares(eps),
    )


def milestone_shares(episodes: list[EpisodeStats]) -> dict[str, float]:
    """name -> share of `episodes` that reached the flag (an episode without it did not)."""
    names = sorted({name for e in episodes for name in e.milestones})
    n = len(episodes)
    return {name: sum(e.milestones.get(name, False) for e in episodes) / n for name in names}


def summarize_by_task(
    episodes: Iterable[EpisodeStats], metric: str = "success_once", confidence: float = 0.95
) -> dict[str, SuccessSummary]:
    """Per-task summaries plus an "overall" entry pooling every episode."""
    eps = list(episodes)
    tasks = sorted({e.task for e in eps})
    out = {t: summarize([e for e in eps if e.task == t], metric, confidence) for t in tasks}
    out["overall"] = summarize(eps, metric, confidence)
    return out

"""Wilson intervals against hand-computed bounds, and per-task summaries."""

from __future__ import annotations

import pytest

from rl_post.envs.spec import EpisodeStats
from rl_post.eval.stats import normal_quantile, summarize, summarize_by_task, wilson_interval


# Bounds worked out by hand from center = (p + z^2/2n) / (1 + z^2/n),
# half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2), z = 1.959964:
#   8/10: center 0.716741, half 0.226576;  5/20: center 0.290283, half 0.178419;
#   0/10: center = half = 0.138765.
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (8, 10, 0.490165, 0.943318),
        (5, 20, 0.111864, 0.468702),
        (0, 10, 0.0, 0.277530),
        (10, 10, 0.722470, 1.0),
    ],
)
def test_wilson_matches_hand_computed_bounds(k, n, low, high):
    got_low, got_high = wilson_interval(k, n)
    assert got_low == pytest.approx(low, abs=1e-5)
    assert got_high == pytest.approx(high, abs=1e-5)


def test_wilson_no_trials_is_uninformative_and_bad_counts_raise():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_normal_quantile_for_common_levels():
    assert normal_quantile(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert normal_quantile(0.90) == pytest.approx(1.644854, abs=1e-6)


def ep(task: str, success_once: bool, success_at_end: bool, length: int) -> EpisodeStats:
    return EpisodeStats(0, task, 0, success_once, success_at_end, float(success_once), length)


def test_summaries_per_task_and_overall():
    eps = [ep("A", True, False, 10), ep("A", False, False, 50), ep("B", True, True, 20)]
    by_task = summarize_by_task(eps)
    assert by_task["A"].successes == 1 and by_task["A"].episodes == 2
    assert by_task["A"].mean_length == 30.0
    assert by_task["overall"].success_rate == pytest.approx(2 / 3)
    assert (by_task["overall"].ci_low, by_task["overall"].ci_high) == wilson_interval(2, 3)
    assert summarize(eps, metric="success_at_end").successes == 1
    with pytest.raises(ValueError, match="success_once"):
        summarize(eps, metric="return")


def test_milestone_shares_count_an_episode_without_a_flag_as_not_reached():
    eps = [ep("A", True, True, 10), ep("A", False, False, 10), ep("B", False, False, 10)]
    eps[0].milestones = {"is_grasped": True, "is_obj_placed": True}
    eps[1].milestones = {"is_grasped": True, "is_obj_placed": False}
    by_task = summarize_by_task(eps)
    assert by_task["A"].milestones == {"is_grasped": 1.0, "is_obj_placed": 0.5}
    assert by_task["B"].milestones == {}
    assert by_task["overall"].milestones == pytest.approx(
        {"is_grasped": 2 / 3, "is_obj_placed": 1 / 3}
    )

import pytest

from rl_post.rewards.agreement import (
    agreement_metrics,
    auroc,
    average_ranks,
    expected_calibration_error,
    precision,
    recall,
    reliability_table,
)

# Six decisions: threshold 0.5 predicts the first three as successes.
PROBS = [0.9, 0.8, 0.6, 0.4, 0.3, 0.1]
LABELS = [1, 1, 0, 1, 0, 0]


def test_precision_and_recall_by_hand():
    predicted = [p > 0.5 for p in PROBS]  # TP = 2 (0.9, 0.8), FP = 1 (0.6), FN = 1 (0.4)
    assert precision(predicted, LABELS) == pytest.approx(2 / 3)
    assert recall(predicted, LABELS) == pytest.approx(2 / 3)


def test_auroc_counts_ordered_pairs():
    # positives 0.9, 0.8, 0.4 vs negatives 0.6, 0.3, 0.1: 3 + 3 + 2 of 9 pairs ordered right
    assert auroc(PROBS, LABELS) == pytest.approx(8 / 9)


def test_auroc_counts_ties_as_half():
    # positives 0.5, 0.8 vs negatives 0.5, 0.2: (0.5 tie) + 1 + 1 + 1 = 3.5 of 4
    assert auroc([0.5, 0.5, 0.2, 0.8], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert auroc([0.3, 0.3, 0.3], [1, 0, 1]) == pytest.approx(0.5)
    assert average_ranks([0.3, 0.1, 0.3, 0.7]).tolist() == [2.5, 1.0, 2.5, 4.0]


def test_expected_calibration_error_two_bins_by_hand():
    # bin [0, .5): probs .4 .3 .1 (mean .2667), labels 1 0 0 (rate .3333) -> gap .0667
    # bin [.5, 1]: probs .9 .8 .6 (mean .7667), labels 1 1 0 (rate .6667) -> gap .1
    # ECE = 3/6 * .0667 + 3/6 * .1 = .08333
    assert expected_calibration_error(PROBS, LABELS, num_bins=2) == pytest.approx(1 / 12)
    table = reliability_table(PROBS, LABELS, num_bins=2)
    assert [b.count for b in table] == [3, 3]
    assert table[1].mean_prob == pytest.approx(2.3 / 3)
    assert table[1].success_rate == pytest.approx(2 / 3)


def test_probability_one_falls_in_the_last_bin_and_empty_bins_are_none():
    table = reliability_table([1.0, 0.0], [1, 0], num_bins=4)
    assert [b.count for b in table] == [1, 0, 0, 1]
    assert table[1].mean_prob is None
    assert expected_calibration_error([1.0, 0.0], [1, 0], 4) == 0.0


def test_undefined_metrics_are_left_out():
    metrics = agreement_metrics([0.2, 0.7], [0, 0], threshold=0.5, num_bins=10)
    assert "reward/recall" not in metrics and "reward/auroc" not in metrics
    assert metrics["reward/precision"] == 0.0
    assert metrics["reward/true_success_rate"] == 0.0
    assert metrics["reward/predicted_success_rate"] == 0.5
    assert agreement_metrics([], [], 0.5, 10) == {}


def test_agreement_metrics_keys_and_values():
    m = agreement_metrics(PROBS, LABELS, threshold=0.5, num_bins=2)
    assert m["reward/precision"] == pytest.approx(2 / 3)
    assert m["reward/recall"] == pytest.approx(2 / 3)
    assert m["reward/auroc"] == pytest.approx(8 / 9)
    assert m["reward/ece"] == pytest.approx(1 / 12)
    assert m["reward/true_success_rate"] == pytest.approx(0.5)
    assert m["reward/predicted_success_rate"] == pytest.approx(0.5)

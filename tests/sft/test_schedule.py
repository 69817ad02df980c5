"""Warmup + cosine LR factor at hand-picked steps (warmup 10, total 110, floor 0.1)."""

from __future__ import annotations

import pytest

from rl_post.sft.schedule import warmup_cosine_factor


@pytest.mark.parametrize(
    ("step", "factor"),
    [(0, 0.1), (4, 0.5), (9, 1.0), (10, 1.0), (60, 0.55), (110, 0.1), (500, 0.1)],
)
def test_warmup_cosine_factor(step, factor):
    assert warmup_cosine_factor(step, 10, 110, 0.1) == pytest.approx(factor)


def test_no_warmup_starts_at_full_rate():
    assert warmup_cosine_factor(0, 0, 100, 0.0) == pytest.approx(1.0)
    assert warmup_cosine_factor(50, 0, 100, 0.0) == pytest.approx(0.5)

"""The per-run learning-curve PNG and its moving average."""

import json

import pytest

from rl_post.learning_curve import main, moving_average, plot_learning_curve


def test_moving_average_by_hand():
    assert moving_average([1.0, 0.0, 1.0, 1.0], 2) == pytest.approx([1.0, 0.5, 0.5, 1.0])
    assert moving_average([], 3) == []


def test_plot_from_metrics_with_and_without_evals(tmp_path):
    rows = [
        {
            "iteration": 0,
            "eval/success_rate": 0.3,
            "eval/ci_low": 0.2,
            "eval/ci_high": 0.4,
            "perf/env_steps": 0,
            "perf/wall_s": 0,
        },
        {"iteration": 1, "rollout/success_rate": 0.5, "perf/env_steps": 100, "perf/wall_s": 5},
        {"iteration": 2, "rollout/success_rate": None, "perf/env_steps": 200, "perf/wall_s": 9},
        {
            "iteration": 3,
            "rollout/success_rate": 0.7,
            "eval/success_rate": 0.6,
            "eval/ci_low": 0.5,
            "eval/ci_high": 0.7,
            "perf/env_steps": 300,
            "perf/wall_s": 14,
        },
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = plot_learning_curve(tmp_path)
    assert path == tmp_path / "learning_curve.png" and path.stat().st_size > 0
    out = tmp_path / "other.png"
    assert main([str(tmp_path / "metrics.jsonl"), "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_missing_metrics_names_the_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        plot_learning_curve(tmp_path)


def _long_run_rows(env_steps: float = 461_000, modes: tuple[str, ...] = ()) -> list[dict]:
    """A run the size of the README's presets: 36 updates, 0.15-0.46M env steps, 18 minutes."""
    rows = []
    for i in range(37):
        row = {"iteration": i, "perf/env_steps": i * env_steps / 36, "perf/wall_s": i * 30.0}
        if i:
            row["rollout/success_rate"] = 0.3
        if i % 12 == 0:
            row.update({"eval/success_rate": 0.3, "eval/ci_low": 0.2, "eval/ci_high": 0.4})
            for mode in modes:
                row.update(
                    {
                        f"eval/{mode}/success_rate": 0.3,
                        f"eval/{mode}/ci_low": 0.2,
                        f"eval/{mode}/ci_high": 0.4,
                    }
                )
        rows.append(row)
    return rows


def _kept_figure(tmp_path, monkeypatch, rows):
    import matplotlib.pyplot as plt

    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_learning_curve(tmp_path)
    return kept[0]


@pytest.mark.parametrize("env_steps", [150_000, 384_000, 461_000, 2_500_000])
def test_env_step_tick_labels_do_not_overlap(tmp_path, monkeypatch, env_steps):
    fig = _kept_figure(tmp_path, monkeypatch, _long_run_rows(env_steps))
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        boxes = sorted(
            (
                t.get_window_extent(renderer)
                for t, x in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True)
                if t.get_text() and lo <= x <= hi
            ),
            key=lambda b: b.x0,
        )
        assert len(boxes) >= 3
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left.x1 < right.x0, [t.get_text() for t in ax.get_xticklabels()]


def test_both_evaluated_policies_are_drawn_and_older_runs_keep_their_series(tmp_path, monkeypatch):
    fig = _kept_figure(tmp_path, monkeypatch, _long_run_rows(modes=("deterministic", "stochastic")))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("deterministic" in label for label in labels)
    assert any("stochastic" in label for label in labels)

    old_run = tmp_path / "old"
    old_run.mkdir()
    fig = _kept_figure(old_run, monkeypatch, _long_run_rows())
    assert "held-out eval (95% CI)" in fig.axes[0].get_legend_handles_labels()[1]

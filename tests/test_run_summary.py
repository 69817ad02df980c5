import json

from rl_post.run_summary import before_after, describe, eval_rows


def row(iteration, successes, low, high, mode="deterministic"):
    key = f"eval/{mode}/"
    return {
        "iteration": iteration,
        key + "successes": successes,
        key + "episodes": 100,
        key + "success_rate": successes / 100,
        key + "ci_low": low,
        key + "ci_high": high,
    }


def test_first_and_last_evaluation_with_the_interval_verdict(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        row(0, 10, 0.055, 0.174),
        {"iteration": 1, "learner/loss": 0.3},
        row(20, 16, 0.1, 0.245),
    ]
    rows.append(row(40, 30, 0.219, 0.396))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = eval_rows(path)
    assert [r["iteration"] for r in evals] == [0, 20, 40]
    summary = before_after(evals)
    det = summary["deterministic"]
    assert (det["before"]["successes"], det["after"]["successes"]) == (10, 30)
    assert det["change_points"] == 20.0 and det["intervals_apart"]  # 0.219 > 0.174
    assert "stochastic" not in summary
    line = describe(summary)
    assert "update 0 -> 40" in line and "10/100 [5.5%, 17.4%] -> 30/100" in line
    assert "+20.0 points, intervals apart" in line


def test_overlapping_intervals_and_too_few_evaluations():
    summary = before_after([row(0, 10, 0.055, 0.174), row(9, 14, 0.085, 0.22)])
    assert not summary["deterministic"]["intervals_apart"]
    assert "intervals overlap" in describe(summary)
    assert before_after([row(0, 10, 0.055, 0.174)]) is None

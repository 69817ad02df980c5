"""Proof result rows from stage outputs, against hand-made inputs."""

import json
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from rl_post.config import ConfigError
from rl_post.proof.recipe import parse_recipe
from rl_post.proof.report import build_row, env_steps_to_reach, eval_curve, markdown_rows
from rl_post.proof.run import proof_command
from rl_post.proof.table import END, START, replace_between_markers, table_from


def recipe(**overrides):
    cfg = {
        "name": "r",
        "title": "R",
        "env": ["env=pickcube"],
        "demos": {"num_demos": 10, "num_workers": 1},
        "sft": {"overrides": []},
        "rl": {"overrides": []},
        "eval": {"episodes": 100, "modes": ["stochastic"], "num_envs": 4},
        "targets": {"success": 0.8, "gain": 0.3},
        "baseline": None,
    }
    cfg.update(overrides)
    return parse_recipe(cfg)


def summary(rate, low, high, n=100):
    return {
        "successes": int(rate * n),
        "episodes": n,
        "success_rate": rate,
        "ci_low": low,
        "ci_high": high,
    }


ROWS = [
    {"iteration": 0, "perf/env_steps": 0, "eval/success_rate": 0.3, "eval/ci_low": 0.2},
    {"iteration": 10, "perf/env_steps": 5e4, "perf/wall_s": 100.0},
    {"iteration": 20, "perf/env_steps": 1e5, "perf/wall_s": 200.0, "eval/success_rate": 0.5},
    {"iteration": 30, "perf/env_steps": 2e5, "perf/wall_s": 400.0, "eval/success_rate": 0.65},
]


def test_curve_and_env_steps_to_a_gain():
    curve = eval_curve(ROWS, "stochastic", run_mode="stochastic")
    assert [p["env_steps"] for p in curve] == [0, 1e5, 2e5]
    assert env_steps_to_reach(curve, 0.6) == 2e5
    assert env_steps_to_reach(curve, 0.9) is None
    assert eval_curve(ROWS, "deterministic", run_mode="stochastic") == []  # not measured
    both = [{"eval/deterministic/success_rate": 0.4, "perf/env_steps": 7}]
    assert eval_curve(both, "deterministic", run_mode="stochastic")[0]["env_steps"] == 7


def test_row_reports_lift_interval_separation_and_target():
    row = build_row(
        recipe(),
        {"stochastic": summary(0.30, 0.24, 0.37)},
        {"stochastic": summary(0.82, 0.76, 0.87)},
        ROWS,
        "stochastic",
        {"rl": "rl-post train ..."},
    )
    mode = row["modes"]["stochastic"]
    assert mode["lift_points"] == pytest.approx(52.0)
    assert mode["after_interval_above_before"] and row["target_met"]
    assert mode["env_steps_to_gain"] == 2e5  # 0.3 + 0.3 first reached at 0.65
    assert row["training"] == {
        "env_steps": 2e5,
        "train_wall_s": 400.0,
        "env_steps_per_s": 500.0,
        "updates": 30,
    }
    (line,) = markdown_rows(row)
    assert "| +52 |" in line and "| yes |" in line and "200k" in line
    touching = build_row(
        recipe(),
        {"stochastic": summary(0.30, 0.24, 0.37)},
        {"stochastic": summary(0.40, 0.36, 0.50)},
        ROWS,
        "stochastic",
        {},
    )
    assert not touching["modes"]["stochastic"]["after_interval_above_before"]
    assert not touching["target_met"]


def test_recipe_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown keys \\['bogus'\\]"):
        recipe(bogus=1)
    with pytest.raises(ConfigError, match="choose from stochastic, deterministic"):
        recipe(eval={"episodes": 10, "modes": ["greedy"], "num_envs": 1})


def test_readme_table_goes_between_the_markers():
    text = f"intro\n{START}\nold\n{END}\noutro\n"
    assert replace_between_markers(text, "new\n") == f"intro\n{START}\nnew\n{END}\noutro\n"


def test_proof_command_round_trips_extra_rl_overrides_through_the_shell_and_hydra():
    assert proof_command("r", []) == "rl-post proof r"
    extras = ["reward.success_bonus=50", "eval.every=40"]
    line = proof_command("r", extras)
    argv = shlex.split(line)
    assert argv[:3] == ["rl-post", "proof", "r"]
    (override,) = OverridesParser.create().parse_overrides([argv[3]])
    assert override.key_or_group == "proof.rl_extra_overrides"
    assert override.value() == extras


def test_table_names_the_recorded_proof_command(tmp_path):
    row = build_row(
        recipe(),
        {"stochastic": summary(0.3, 0.2, 0.4)},
        {"stochastic": summary(0.6, 0.5, 0.7)},
        ROWS,
        "stochastic",
        {
            "rl": "rl-post train x=1",
            "proof": "rl-post proof r 'proof.rl_extra_overrides=[\"x=1\"]'",
        },
    )
    (tmp_path / "r.json").write_text(json.dumps(row))
    assert (
        "`rl-post proof r 'proof.rl_extra_overrides=[\"x=1\"]'`; RL stage: `rl-post train x=1`"
        in (table_from(tmp_path))
    )
    del row["commands"]["proof"]  # a row published before the proof line was recorded
    (tmp_path / "r.json").write_text(json.dumps(row))
    assert "`rl-post proof r`; RL stage:" in table_from(tmp_path)

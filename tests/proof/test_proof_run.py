"""`rl-post proof`: the whole chain at tiny size, then a rerun that reuses every stage."""

import json

import pytest

from rl_post.cli import main as cli_main

pytestmark = [pytest.mark.e2e, pytest.mark.sim]


def test_tiny_proof_runs_every_stage_and_a_rerun_reuses_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # demos, runs and results all land under tmp_path
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert cli_main(["proof", "tiny"]) == 0
    root = tmp_path / "runs" / "proof" / "tiny"
    row = json.loads((root / "result.json").read_text())
    assert set(row["modes"]) == {"stochastic", "deterministic"}
    for mode in row["modes"].values():
        assert mode["before"]["episodes"] == 2 and mode["after"]["episodes"] == 2
    assert row["training"]["env_steps"] > 0 and row["training"]["updates"] == 1
    assert "baseline" in row and row["baseline"]["env_steps"] > 0
    assert row["commands"]["rl"].startswith("rl-post train env=pickcube")
    assert (root / "result.md").read_text().startswith("| recipe |")
    state = json.loads((root / "state.json").read_text())
    assert all(state["stages"][s]["done"] for s in ("demos", "sft", "rl", "eval_after"))
    sft_runs = list((root / "runs" / "sft").iterdir())
    capsys.readouterr()

    assert cli_main(["proof", "tiny"]) == 0  # everything is reused, nothing reruns
    out = capsys.readouterr().out
    assert out.count("done earlier, reused") == 7
    assert list((root / "runs" / "sft").iterdir()) == sft_runs

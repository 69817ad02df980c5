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


def test_resumed_rl_stage_keeps_the_command_that_started_it(tmp_path, monkeypatch):
    """A proof that resumes its RL run must still publish the command that reproduces the run,
    not `resume=<a local run dir>`; the resume is recorded beside it."""
    from omegaconf import OmegaConf

    from rl_post.proof import run as proof_run

    recipe = OmegaConf.load(
        proof_run.Path(__file__).resolve().parents[2] / "configs/recipe/tiny.yaml"
    )
    cfg = OmegaConf.create(
        {
            "recipe": recipe,
            "proof": {
                "root": str(tmp_path),
                "publish": False,
                "publish_dir": "",
                "rl_extra_overrides": [],
            },
        }
    )
    run_dir = tmp_path / "tiny" / "runs" / "rl" / "20260101-000000"
    (run_dir / "checkpoints" / "iter_000003").mkdir(parents=True)
    started = "rl-post train env=pickcube presets=flow_ppo_rl name=rl"
    state = proof_run.ProofState(tmp_path / "tiny" / proof_run.STATE_FILE)
    state.stage("rl")["run_dir"] = str(run_dir)
    state.data["commands"] = {"rl": started}
    state.save()
    launched: list[list[str]] = []

    def fake_run(argv, env):
        launched.append(argv)
        return proof_run.subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(proof_run.subprocess, "run", fake_run)
    runner = proof_run.ProofRunner(cfg)
    runner.rl("rl", init_from=None, overrides=())

    assert launched[0][-2:] == ["train", f"resume={run_dir}"]
    saved = json.loads((tmp_path / "tiny" / proof_run.STATE_FILE).read_text())
    assert saved["commands"]["rl"] == started
    assert saved["commands"]["rl_resume"] == f"rl-post train resume={run_dir}"
    assert saved["stages"]["rl"]["final"] == str(run_dir / "checkpoints" / "iter_000003" / "policy")


def test_runner_records_the_proof_command_with_its_extra_rl_overrides(tmp_path):
    """The published row must name the `rl-post proof` line that made it: a run with
    proof.rl_extra_overrides is not reproduced by `rl-post proof <recipe>` alone."""
    from omegaconf import OmegaConf

    from rl_post.proof import run as proof_run

    recipe = OmegaConf.load(
        proof_run.Path(__file__).resolve().parents[2] / "configs/recipe/tiny.yaml"
    )
    proof = {"root": str(tmp_path), "publish": False, "publish_dir": ""}
    cfg = OmegaConf.create(
        {"recipe": recipe, "proof": {**proof, "rl_extra_overrides": ["reward.success_bonus=5"]}}
    )
    runner = proof_run.ProofRunner(cfg)
    expected = "rl-post proof tiny 'proof.rl_extra_overrides=[\"reward.success_bonus=5\"]'"
    assert runner.commands["proof"] == expected
    runner.state.data["commands"] = runner.commands
    runner.state.save()
    # a later rerun continues the same proof: the line that started it stays
    cfg.proof.rl_extra_overrides = []
    assert proof_run.ProofRunner(cfg).commands["proof"] == expected

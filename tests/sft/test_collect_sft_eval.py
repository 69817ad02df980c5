"""End to end with real ManiSkill simulation: motion-planned demos -> SFT -> evaluation.

Kept small: 2 demos (+1 appended), 20 SFT steps of a shrunken model, 2 eval seeds of 12 steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl_post.cli import main as cli_main
from rl_post.config import ConfigError, load_config
from rl_post.data.demos import iter_episodes, load_demos, read_info
from rl_post.envs.settings import parse_env_settings
from rl_post.sft.collect import collect_demos, parse_collect_settings
from rl_post.sft.planner_demo import check_planner_task
from tests.sft.tiny import tiny_overrides

pytestmark = pytest.mark.sim

SEED_BASE = 2_000_000_000


def collect(path: Path, num_demos: int) -> dict:
    cfg = load_config(
        "collect",
        [f"collect.path={path}", f"collect.num_demos={num_demos}", "collect.num_workers=0"],
    )
    return collect_demos(parse_env_settings(cfg.env, num_envs=1), parse_collect_settings(cfg))


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demos") / "pick.h5"
    report = collect(path, 2)
    assert report["tasks"]["PickCube-v1"]["total"] == 2
    return path


def test_collected_demos_round_trip(demo_file):
    info = read_info(demo_file)
    assert (info["obs_mode"], info["control_mode"]) == ("state", "pd_ee_delta_pose")
    assert info["num_episodes"] == 2 and info["counts"] == {"PickCube-v1": 2}
    assert all(SEED_BASE <= s < 2**31 for s in info["seeds"])
    for ep in iter_episodes(demo_file):
        assert ep.success and ep.task == "PickCube-v1"
        assert ep.state.shape == (ep.length, info["state_dim"])
        assert ep.actions.shape == (ep.length, 7)
        assert abs(ep.actions).max() <= 1.0 + 1e-6  # normalized pd_ee_delta_pose range
        assert "cube" in ep.instruction


def test_rerun_appends_only_new_seeds(demo_file, tmp_path):
    copy = tmp_path / "copy.h5"
    copy.write_bytes(demo_file.read_bytes())
    before = set(read_info(copy)["seeds"])
    assert collect(copy, 2)["tasks"]["PickCube-v1"]["new"] == 0  # already complete
    report = collect(copy, 3)
    after = read_info(copy)["seeds"]
    assert report["tasks"]["PickCube-v1"]["new"] == 1
    assert len(after) == 3 and set(after) > before and len(set(after)) == 3


def test_task_without_planner_lists_planner_tasks():
    with pytest.raises(ConfigError, match="PickCube-v1.*StackCube-v1"):
        check_planner_task("PokeCube-v1")


def test_obs_mode_mismatch_with_training_config(demo_file):
    with pytest.raises(ConfigError, match="obs_mode"):
        load_demos(demo_file, "rgb", "pd_ee_delta_pose")


def test_sft_then_eval_is_reproducible(demo_file, tmp_path):
    runs = tmp_path / "runs"
    sft_args = [
        "sft",
        f"sft.dataset={demo_file}",
        "sft.num_demos=1",
        "sft.val_episodes=1",
        "sft.steps=20",
        "sft.batch_size=16",
        "sft.val_every=10",
        "sft.log_every=10",
        f"output_root={runs}",
        "name=e2e",
        *tiny_overrides("flow"),
    ]
    assert cli_main(sft_args) == 0
    (run_dir,) = (runs / "e2e").iterdir()
    summary = json.loads((run_dir / "sft_summary.json").read_text())
    assert summary["num_demos"] == 1
    assert summary["final_val_loss"] < summary["initial_val_loss"]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.jsonl").is_file()
    meta = json.loads((run_dir / "checkpoints" / "best" / "meta.json").read_text())
    assert meta["extra"]["sft"]["num_demos"] == 1 and "val_loss" in meta["extra"]["sft"]

    eval_args = [
        "eval",
        f"eval.checkpoint={run_dir / 'checkpoints' / 'final'}",
        "eval.episodes=2",
        "eval.num_envs=2",
        "env.max_episode_steps=12",
        f"output_root={tmp_path / 'eval'}",
    ]
    reports = []
    for _ in range(2):
        assert cli_main(eval_args) == 0
    for folder in sorted((tmp_path / "eval" / "eval-e2e-final-on-PickCube-v1").iterdir()):
        report = json.loads((folder / "eval_report.json").read_text())
        assert (folder / "eval_report.md").read_text().count("PickCube-v1") >= 1
        reports.append(report)
    assert len(reports) == 2
    assert reports[0]["episodes"] == reports[1]["episodes"]
    assert reports[0]["tasks"] == reports[1]["tasks"]
    assert [e["seed"] for e in reports[0]["episodes"]] == [1_000_000_000, 1_000_000_001]
    assert all(e["length"] == 12 or e["success_once"] for e in reports[0]["episodes"])


def test_mlp_gaussian_sft_checkpoint_evaluates(demo_file, tmp_path):
    """The Gaussian MLP baseline trains by behaviour cloning (Gaussian NLL) and its checkpoint
    carries the demo statistics into `rl-post eval`."""
    runs = tmp_path / "runs"
    sft_args = [
        "sft",
        "model=mlp_gaussian",
        f"sft.dataset={demo_file}",
        "sft.num_demos=1",
        "sft.val_episodes=1",
        "sft.steps=20",
        "sft.batch_size=16",
        "sft.val_every=10",
        "sft.log_every=10",
        f"output_root={runs}",
        "name=mlp",
        *tiny_overrides("mlp"),
    ]
    assert cli_main(sft_args) == 0
    (run_dir,) = (runs / "mlp").iterdir()
    summary = json.loads((run_dir / "sft_summary.json").read_text())
    assert summary["final_val_loss"] < summary["initial_val_loss"]
    stats = json.loads((run_dir / "checkpoints" / "final" / "normalization.json").read_text())
    assert any(abs(m) > 1e-3 for m in stats["state_mean"])  # demo statistics, not the identity
    eval_args = [
        "eval",
        f"eval.checkpoint={run_dir / 'checkpoints' / 'final'}",
        "eval.episodes=2",
        "eval.num_envs=2",
        "env.max_episode_steps=12",
        f"output_root={tmp_path / 'eval'}",
    ]
    assert cli_main(eval_args) == 0
    (folder,) = (tmp_path / "eval" / "eval-mlp-final-on-PickCube-v1").iterdir()
    report = json.loads((folder / "eval_report.json").read_text())
    assert report["tasks"]["overall"]["episodes"] == 2

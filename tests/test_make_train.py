"""`make train`'s recipe: it composes, and the SFT checkpoint it starts from ships in the repo,
loads strictly into the recipe's model and fits the recipe's env."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from rl_post.config import load_config
from rl_post.trainer import Trainer, prepare_config

ROOT = Path(__file__).resolve().parents[1]


def train_recipe() -> list[str]:
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("TRAIN_RECIPE ?="):
            return shlex.split(line.split("?=", 1)[1])
    raise AssertionError("Makefile has no TRAIN_RECIPE")


def test_recipe_starts_from_the_shipped_sft_checkpoint():
    overrides = train_recipe()
    init = [o.split("=", 1)[1] for o in overrides if o.startswith("init_from=")]
    assert init, "make train must start from an SFT checkpoint"
    ckpt = ROOT / init[0]
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "meta.json").is_file()
    assert (ckpt / "README.md").is_file(), "the command that made the checkpoint sits beside it"
    size = sum(f.stat().st_size for f in ckpt.iterdir())
    assert size < 5 * 2**20


@pytest.mark.sim
def test_shipped_checkpoint_loads_strictly_into_the_recipe(monkeypatch):
    from rl_post.envs.factory import obs_spec_for
    from rl_post.models.checkpoint import check_checkpoint_compatible, load_policy

    monkeypatch.chdir(ROOT)  # the recipe's init_from is relative to the repository root
    cfg = prepare_config(load_config("train", train_recipe()))
    notes = Trainer._env_from_init_checkpoint(cfg)
    assert all("mismatch" not in n for n in notes), notes
    spec = obs_spec_for(cfg.env)
    assert check_checkpoint_compatible(str(cfg.init_from), cfg.model, spec) in (None, "")
    policy = load_policy(str(cfg.init_from), expect_config=cfg.model, spec=spec)
    assert sum(p.numel() for p in policy.parameters()) > 0
    assert list(cfg.env.tasks) == ["PushCube-v1"]

"""Run directories: runs/<name>/<timestamp>/ with the resolved config written first."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rl_post.config import ConfigError


def new_run_dir(output_root: str, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(output_root) / name / stamp
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        # mkdir without exist_ok is the atomic claim: two runs started within the same second
        # (or two processes of a sweep) must never share, and so overwrite, one directory.
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, n = base.with_name(f"{stamp}-{n}"), n + 1


def existing_run_dir(path: str) -> Path:
    run = Path(path)
    if not (run / "config.yaml").is_file():
        raise ConfigError(
            f"resume={path}: not a run directory (no config.yaml); pass runs/<name>/<timestamp>"
        )
    return run


def write_config(run_dir: Path, cfg: DictConfig, filename: str = "config.yaml") -> Path:
    target = run_dir / filename
    target.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return target

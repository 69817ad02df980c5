"""The directory layout every rl_post model checkpoint shares (policies, reward classifiers).

<dir>/model.safetensors, normalization.json, model_config.json, and meta.json written LAST: a
directory with meta.json is complete, one without it is an interrupted save.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from rl_post.config import ConfigError

META_FILE = "meta.json"
CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "model.safetensors"
NORMALIZATION_FILE = "normalization.json"


def write_json(path: Path, payload: Any, allow_nan: bool = True) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=allow_nan) + "\n")
    os.replace(tmp, path)


def write_checkpoint_dir(
    path: str | os.PathLike,
    weights: dict[str, torch.Tensor],
    normalization: Any,
    config: dict[str, Any],
    meta: dict[str, Any],
    allow_nan: bool = True,
) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META_FILE).unlink(missing_ok=True)  # incomplete until the new meta lands
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp))
    os.replace(tmp, folder / WEIGHTS_FILE)
    write_json(folder / NORMALIZATION_FILE, normalization, allow_nan)
    write_json(folder / CONFIG_FILE, config, allow_nan)
    write_json(folder / META_FILE, meta, allow_nan)
    return folder


def require_file(folder: Path, name: str, what: str, incomplete_fix: str) -> Path:
    """`folder/name`, or a ConfigError saying which `what` (e.g. "policy checkpoint") is broken."""
    file = folder / name
    if not file.is_file():
        hint = (
            f"the save was interrupted or this is not a {what}"
            if name == META_FILE
            else f"the checkpoint is incomplete; {incomplete_fix}"
        )
        raise ConfigError(f"{what} {folder} has no {name} ({hint})")
    return file

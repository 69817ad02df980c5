"""Hydra config loading shared by every `rl-post` subcommand.

We use Hydra's compose API rather than @hydra.main so one console script can host several
subcommands, and so bad overrides become one clear line instead of a Hydra traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message names the problem and the fix."""


def config_dir() -> Path:
    override = os.environ.get("RL_POST_CONFIG_DIR")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parent.parent / "configs"


def _group_choices(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_config(name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose `configs/<name>.yaml` with command-line style overrides (`a.b=1`, `model=flow_tiny`)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import ConfigKeyError

    overrides = list(overrides or [])
    folder = config_dir()
    if not (folder / f"{name}.yaml").is_file():
        raise ConfigError(
            f"no config '{name}.yaml' in {folder}; set RL_POST_CONFIG_DIR or reinstall"
        )
    try:
        with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
            cfg = compose(config_name=name, overrides=overrides)
    except OverrideParseException as exc:
        raise ConfigError(
            f"cannot parse override: {str(exc).splitlines()[0]}; write overrides as key=value, "
            "lists as 'key=[a,b]' (quote them in the shell)"
        ) from None
    except MissingConfigException as exc:
        raise ConfigError(_explain_missing_option(str(exc), overrides)) from None
    except (ConfigCompositionException, ConfigKeyError) as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(_explain_bad_key(str(cause), overrides)) from None
    OmegaConf.set_struct(cfg, True)
    return cfg


def _explain_missing_option(message: str, overrides: list[str]) -> str:
    for item in overrides:
        group, _, choice = item.partition("=")
        choices = _group_choices(group.lstrip("+~"))
        if choices and choice not in choices:
            return f"unknown {group} '{choice}'; valid choices: {', '.join(choices)}"
    return f"config error: {message.splitlines()[0]}"


def _explain_bad_key(message: str, overrides: list[str]) -> str:
    first = message.splitlines()[0]
    preset = re.search(r"In 'presets/([^']+)': Could not override '([^']+)'", first)
    if preset:
        return (
            f"preset '{preset.group(1)}' sets the '{preset.group(2)}' group, which this command "
            f"does not have: it is a preset for another command (e.g. train). Pass the env "
            "settings as overrides, or use a preset made for this command"
        )
    if "not in struct" in first or "Key '" in first or "Could not override" in first:
        bad = [o.split("=")[0] for o in overrides if o.split("=")[0].split(".")[-1] in first]
        key = bad[0] if bad else first
        return (
            f"unknown config key '{key}' ({first}). Check the spelling against "
            f"`rl-post <command> --cfg` or add it with '+{key}=...' if it is meant to be new"
        )
    return f"config error: {first}"


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]

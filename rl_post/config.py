"""Hydra config loading shared by every `rl-post` subcommand.

We use Hydra's compose API rather than @hydra.main so one console script can host several
subcommands, and so bad overrides become one clear line instead of a Hydra traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message names the problem and the fix."""


# Top-level keys load_config fills from the command line (configs declare them to opt in).
PRESET_KEY = "preset"  # preset.name: the presets=<name> choice; preset.tasks: tasks it serves
EXPLICIT_ENV_KEY = "env_explicit_keys"  # env keys given by env=, env.<key>= or the preset


def tasks_tag(tasks: ListConfig | list[str] | str) -> str:
    """The task part of run names and demo file names: the task id, or several joined by '+'."""
    if isinstance(tasks, str):
        return tasks
    return "+".join(dict.fromkeys(str(t) for t in tasks))


def name_suffix(value: str | None) -> str:
    """'-<value>' for an optional run-name part (e.g. the preset), '' when it is unset."""
    return f"-{value}" if value not in (None, "", "None") else ""


# Interpolations used by configs/*.yaml: ${rl_post.tasks:${env.tasks}}, ${rl_post.suffix:...}.
OmegaConf.register_new_resolver("rl_post.tasks", tasks_tag, replace=True)
OmegaConf.register_new_resolver("rl_post.suffix", name_suffix, replace=True)


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
            cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
            choices = dict(cfg.hydra.runtime.choices)
            with open_dict(cfg):
                del cfg["hydra"]
            if EXPLICIT_ENV_KEY in cfg:
                explicit = explicit_env_keys(name, overrides, choices.get("presets"))
                cfg[EXPLICIT_ENV_KEY] = sorted(explicit)
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
    if PRESET_KEY in cfg:
        cfg[PRESET_KEY].name = choices.get("presets")
    OmegaConf.set_struct(cfg, True)
    return cfg


def _override_key(item: str) -> str:
    return item.split("=", 1)[0].lstrip("+~")


def explicit_env_keys(name: str, overrides: list[str], preset: str | None) -> set[str]:
    """The env keys the user chose: `env.<key>=...`, the keys an `env=<name>` group choice changes
    against the default env (always its tasks), and the keys of the preset's `env:` block.

    A checkpoint's recorded env settings (eval.checkpoint, init_from) fill every other key, so
    a value restated on the command line is still the user's, even where it equals the default.
    Must run inside the initialized Hydra config dir (it composes the env group choice).
    """
    from hydra import compose

    keys = {
        _override_key(o).split(".")[1]
        for o in overrides
        if _override_key(o).startswith("env.") and len(_override_key(o).split(".")) > 1
    }
    group_choice = [o for o in overrides if _override_key(o) == "env"]
    if group_choice:
        chosen = compose(config_name=name, overrides=group_choice).env
        default = compose(config_name=name).env
        keys |= {k for k in chosen if chosen.get(k) != default.get(k)} | {"tasks"}
    if preset:
        keys |= preset_env_keys(preset)
    return keys


def preset_env_keys(preset: str) -> set[str]:
    """Keys of the `env:` block of configs/presets/<preset>.yaml and of the presets it includes."""
    path = config_dir() / "presets" / f"{preset}.yaml"
    if not path.is_file():
        return set()
    raw = OmegaConf.load(path)
    keys = set(raw.get("env", {}) or {})
    for entry in raw.get("defaults", []) or []:
        if isinstance(entry, str) and entry != "_self_" and "/" not in entry:
            keys |= preset_env_keys(entry)
    return keys


def check_preset_serves_tasks(cfg: DictConfig) -> None:
    """A preset is a recipe, not a task: it may only refuse tasks it lists as unsupported by
    setting `preset.tasks` (the tasks it serves); the task itself comes from env= / env.tasks=."""
    preset = cfg.get(PRESET_KEY)
    if preset is None or preset.get("tasks") is None:
        return
    served = [str(t) for t in preset.tasks]
    wanted = [str(t) for t in cfg.env.tasks]
    refused = [t for t in wanted if t not in served]
    if refused:
        raise ConfigError(
            f"preset '{preset.name}' serves only tasks {served}, not {refused} (env.tasks="
            f"{wanted}); pick one of its tasks with env.tasks=[...], or drop presets= / use a "
            "preset made for this task"
        )


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
        named = re.search(r"Key '([^']+)'", first)
        missing = named.group(1) if named else None
        paths = [o.split("=")[0].lstrip("+~") for o in overrides]
        # Hydra names the first missing component (e.g. 'run' of run.name), not the whole path.
        bad = [p for p in paths if missing is not None and missing in p.split(".")]
        bad = bad or [p for p in paths if p.split(".")[-1] in first]
        key = bad[0] if bad else (missing or first)
        return (
            f"unknown config key '{key}' ({first}). Check the spelling against "
            f"`rl-post <command> --cfg` or add it with '+{key}=...' if it is meant to be new"
        )
    return f"config error: {first}"


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]

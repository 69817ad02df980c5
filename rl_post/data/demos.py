"""Demonstration datasets: one HDF5 file of motion-planned episodes, appendable.

Layout (FORMAT_VERSION 1):
  /                      attrs: format_version, obs_mode, control_mode, cameras (JSON list),
                         image_size [H, W], state_dim, action_dim, created, updated, num_episodes,
                         counts (JSON {task: episodes})
  /index/seed            int64 [E]   seed of every stored episode, in storage order
  /index/task            str   [E]   task of every stored episode
  /index/failed_seed     int64 [F]   seeds whose demo failed (so a re-run does not retry them)
  /index/failed_task     str   [F]
  /episodes/ep_000000    attrs: seed, task, instruction, success, length
      obs/state          float32 [L, D]
      obs/rgb            uint8   [L, V, H, W, 3]   (only when obs_mode includes rgb)
      actions            float32 [L, A]            (env units of `control_mode`)

obs[t] is the observation the action actions[t] was taken from. Episodes are written one at a
time and flushed, so an interrupted collection keeps everything already written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rl_post.config import ConfigError

FORMAT_VERSION = 1
OBS_MODES = ("state", "rgb", "state_rgb")
_STR = h5py.string_dtype()


@dataclass
class DemoEpisode:
    task: str
    seed: int
    instruction: str
    state: np.ndarray  # float32 [L, D]
    actions: np.ndarray  # float32 [L, A]
    success: bool
    rgb: np.ndarray | None = None  # uint8 [L, V, H, W, 3]

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])


@dataclass(frozen=True)
class DatasetMeta:
    obs_mode: str
    control_mode: str
    state_dim: int
    action_dim: int
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (0, 0)

    @property
    def has_rgb(self) -> bool:
        return "rgb" in self.obs_mode


def _mismatch(path: Path, field: str, stored: object, wanted: object) -> ConfigError:
    return ConfigError(
        f"demo file {path} was collected with {field}={stored!r} but {wanted!r} was asked for; "
        f"use a new dataset path (collect.path=...) or collect with {field}={stored!r}"
    )


class DemoWriter:
    """Appends episodes to a demo file, creating it on first use. Use as a context manager."""

    def __init__(self, path: str | Path, meta: DatasetMeta):
        self.path = Path(path)
        self.meta = meta
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        if existed:
            stored = read_meta(self.path)
            for field in ("obs_mode", "control_mode", "state_dim", "action_dim", "cameras"):
                if getattr(stored, field) != getattr(meta, field):
                    raise _mismatch(self.path, field, getattr(stored, field), getattr(meta, field))
            if meta.has_rgb and stored.image_size != meta.image_size:
                raise _mismatch(self.path, "image_size", stored.image_size, meta.image_size)
        self._file = h5py.File(self.path, "a")
        if not existed:
            self._init_file()

    def _init_file(self) -> None:
        f, m = self._file, self.meta
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        f.attrs.update(
            format_version=FORMAT_VERSION,
            obs_mode=m.obs_mode,
            control_mode=m.control_mode,
            cameras=json.dumps(list(m.cameras)),
            image_size=np.asarray(m.image_size, dtype=np.int64),
            state_dim=m.state_dim,
            action_dim=m.action_dim,
            created=now,
            updated=now,
            num_episodes=0,
            counts=json.dumps({}),
        )
        index = f.create_group("index")
        for name, dtype in (("seed", np.int64), ("task", _STR)):
            index.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype)
            index.create_dataset(f"failed_{name}", shape=(0,), maxshape=(None,), dtype=dtype)
        f.create_group("episodes")
        f.flush()

    def tried_seeds(self, task: str) -> set[int]:
        """Seeds of `task` already stored or already known to fail."""
        index = self._file["index"]
        seeds: set[int] = set()
        for prefix in ("", "failed_"):
            tasks = index[f"{prefix}task"].asstr()[:]
            seeds.update(
                int(s) for s, t in zip(index[f"{prefix}seed"][:], tasks, strict=True) if t == task
            )
        return seeds

    def count(self, task: str) -> int:
        return int(json.loads(self._file.attrs["counts"]).get(task, 0))

    @staticmethod
    def _append(dataset: h5py.Dataset, value: object) -> None:
        dataset.resize((dataset.shape[0] + 1,))
        dataset[-1] = value

    def add_failure(self, task: str, seed: int) -> None:
        index = self._file["index"]
        self._append(index["failed_seed"], seed)
        self._append(index["failed_task"], task)
        self._file.flush()

    def add(self, episode: DemoEpisode) -> None:
        m = self.meta
        if episode.state.ndim != 2 or episode.state.shape[1] != m.state_dim:
            raise ValueError(f"state must be [L, {m.state_dim}], got {episode.state.shape}")
        if episode.actions.shape != (episode.length, m.action_dim):
            raise ValueError(f"actions must be [L, {m.action_dim}], got {episode.actions.shape}")
        if episode.state.shape[0] != episode.length:
            raise ValueError("state and actions must have the same length")
        if m.has_rgb and (episode.rgb is None or episode.rgb.shape[0] != episode.length):
            raise ValueError(f"obs_mode {m.obs_mode} needs rgb [L, V, H, W, 3] for every step")
        f = self._file
        number = int(f.attrs["num_episodes"])
        group = f["episodes"].create_group(f"ep_{number:06d}")
        group.attrs.update(
            seed=episode.seed,
            task=episode.task,
            instruction=episode.instruction,
            success=bool(episode.success),
            length=episode.length,
        )
        group.create_dataset("obs/state", data=episode.state.astype(np.float32))
        if m.has_rgb:
            group.create_dataset(
                "obs/rgb",
                data=episode.rgb.astype(np.uint8),
                chunks=(1, *episode.rgb.shape[1:]),
                compression="lzf",
            )
        group.create_dataset("actions", data=episode.actions.astype(np.float32))
        self._append(f["index/seed"], episode.seed)
        self._append(f["index/task"], episode.task)
        counts = json.loads(f.attrs["counts"])
        counts[episode.task] = counts.get(episode.task, 0) + 1
        f.attrs.update(
            num_episodes=number + 1,
            counts=json.dumps(counts),
            updated=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        f.flush()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> DemoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_for_reading(path: Path) -> h5py.File:
    if not path.exists():
        raise ConfigError(
            f"demo file {path} does not exist; create it with `rl-post collect-demos`"
        )
    if path.stat().st_size == 0:
        raise ConfigError(
            f"demo file {path} is empty; delete it and re-run `rl-post collect-demos`"
        )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ConfigError(
            f"demo file {path} is not a readable HDF5 file ({exc}); it may be corrupt or "
            "truncated: delete it and re-run `rl-post collect-demos`"
        ) from None
    version = f.attrs.get("format_version")
    if version is None or "episodes" not in f or "index" not in f:
        f.close()
        raise ConfigError(
            f"{path} is not an rl_post demo file (no format_version/episodes); "
            "point sft.dataset at a file written by `rl-post collect-demos`"
        )
    if int(version) != FORMAT_VERSION:
        f.close()
        raise ConfigError(
            f"demo file {path} has format version {int(version)}, this code reads "
            f"{FORMAT_VERSION}; re-collect it with `rl-post collect-demos`"
        )
    return f


def _meta_from(f: h5py.File) -> DatasetMeta:
    a = f.attrs
    return DatasetMeta(
        obs_mode=str(a["obs_mode"]),
        control_mode=str(a["control_mode"]),
        state_dim=int(a["state_dim"]),
        action_dim=int(a["action_dim"]),
        cameras=tuple(json.loads(a["cameras"])),
        image_size=tuple(int(x) for x in a["image_size"]),  # type: ignore[arg-type]
    )


def read_meta(path: str | Path) -> DatasetMeta:
    with _open_for_reading(Path(path)) as f:
        return _meta_from(f)


def read_info(path: str | Path) -> dict[str, object]:
    """Everything in the root metadata, decoded (for reports and `collect-demos` summaries)."""
    with _open_for_reading(Path(path)) as f:
        a = f.attrs
        return {
            "format_version": int(a["format_version"]),
            "obs_mode": str(a["obs_mode"]),
            "control_mode": str(a["control_mode"]),
            "cameras": json.loads(a["cameras"]),
            "image_size": [int(x) for x in a["image_size"]],
            "state_dim": int(a["state_dim"]),
            "action_dim": int(a["action_dim"]),
            "created": str(a["created"]),
            "updated": str(a["updated"]),
            "num_episodes": int(a["num_episodes"]),
            "counts": json.loads(a["counts"]),
            "seeds": [int(s) for s in f["index/seed"][:]],
            "num_failed": int(f["index/failed_seed"].shape[0]),
        }


def iter_episodes(
    path: str | Path, tasks: list[str] | None = None, load_rgb: bool = True
) -> Iterator[DemoEpisode]:
    """Episodes in storage order (collection order), optionally only those of `tasks`."""
    with _open_for_reading(Path(path)) as f:
        episodes = f["episodes"]
        for name in sorted(episodes):
            g = episodes[name]
            task = str(g.attrs["task"])
            if tasks is not None and task not in tasks:
                continue
            rgb = g["obs/rgb"][:] if load_rgb and "obs/rgb" in g else None
            yield DemoEpisode(
                task=task,
                seed=int(g.attrs["seed"]),
                instruction=str(g.attrs["instruction"]),
                state=g["obs/state"][:],
                actions=g["actions"][:],
                success=bool(g.attrs["success"]),
                rgb=rgb,
            )


def load_demos(
    path: str | Path,
    obs_mode: str,
    control_mode: str,
    tasks: list[str] | None = None,
    num_demos: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> tuple[DatasetMeta, list[DemoEpisode]]:
    """Load successful episodes for training, checking the file fits the model/env config.

    `num_demos` keeps the first n episodes per task (few-shot SFT). Raises ConfigError when the
    file is missing/empty/corrupt, was collected for another obs or control mode, or holds no
    episode of the requested tasks.
    """
    path = Path(path)
    meta = read_meta(path)
    # The "state" vector differs between obs modes (task state vs proprioception only), so the
    # obs mode must match exactly, not just "has the needed keys".
    if meta.obs_mode != obs_mode:
        raise ConfigError(
            f"demo file {path} holds obs_mode={meta.obs_mode!r} but env.obs_mode={obs_mode!r}; "
            f"collect demos with env.obs_mode={obs_mode} or train with env.obs_mode={meta.obs_mode}"
        )
    if meta.control_mode != control_mode:
        raise _mismatch(path, "control_mode", meta.control_mode, control_mode)
    if "rgb" in obs_mode and image_size is not None and meta.image_size != tuple(image_size):
        raise _mismatch(path, "image_size", list(meta.image_size), list(image_size))
    per_task: dict[str, int] = {}
    episodes = []
    for ep in iter_episodes(path, tasks=tasks, load_rgb="rgb" in obs_mode):
        if not ep.success:
            continue
        if num_demos is not None and per_task.get(ep.task, 0) >= num_demos:
            continue
        per_task[ep.task] = per_task.get(ep.task, 0) + 1
        episodes.append(ep)
    if not episodes:
        wanted = tasks if tasks is not None else "any task"
        stored = read_info(path)["counts"]
        raise ConfigError(
            f"demo file {path} has no successful episode for {wanted} (it holds {stored}); "
            f"collect some with `rl-post collect-demos env.tasks=[...]`"
        )
    return meta, episodes

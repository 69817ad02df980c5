"""Demo dataset format: round trip, append/skip bookkeeping, and clear errors for bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from rl_post.config import ConfigError
from rl_post.data.demos import (
    DatasetMeta,
    DemoEpisode,
    DemoWriter,
    iter_episodes,
    load_demos,
    read_info,
)

STATE_META = DatasetMeta(
    obs_mode="state", control_mode="pd_ee_delta_pose", state_dim=3, action_dim=2
)
RGB_META = DatasetMeta(
    obs_mode="rgb",
    control_mode="pd_ee_delta_pose",
    state_dim=3,
    action_dim=2,
    cameras=("base_camera",),
    image_size=(4, 5),
)


def episode(
    seed: int, length: int = 3, task: str = "PickCube-v1", rgb: bool = False
) -> DemoEpisode:
    rng = np.random.default_rng(seed)
    return DemoEpisode(
        task=task,
        seed=seed,
        instruction=f"do {task}",
        state=rng.normal(size=(length, 3)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
        success=True,
        rgb=rng.integers(0, 256, size=(length, 1, 4, 5, 3), dtype=np.uint8) if rgb else None,
    )


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "demos.h5"
    written = [episode(7, rgb=True), episode(9, length=5, rgb=True)]
    with DemoWriter(path, RGB_META) as writer:
        for ep in written:
            writer.add(ep)
    read = list(iter_episodes(path))
    assert [e.seed for e in read] == [7, 9]
    for a, b in zip(written, read, strict=True):
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rgb, b.rgb)
        assert (b.task, b.instruction, b.success) == (a.task, a.instruction, True)
    info = read_info(path)
    assert info["num_episodes"] == 2
    assert info["counts"] == {"PickCube-v1": 2}
    assert info["seeds"] == [7, 9]
    assert info["image_size"] == [4, 5]
    assert info["format_version"] == 1


def test_reopening_appends_and_reports_tried_seeds(tmp_path):
    path = tmp_path / "demos.h5"
    with DemoWriter(path, STATE_META) as writer:
        writer.add(episode(1))
        writer.add_failure("PickCube-v1", 2)
    with DemoWriter(path, STATE_META) as writer:
        assert writer.tried_seeds("PickCube-v1") == {1, 2}
        assert writer.tried_seeds("PushCube-v1") == set()
        assert writer.count("PickCube-v1") == 1
        writer.add(episode(3))
        writer.add(episode(4, task="PushCube-v1"))
    assert [e.seed for e in iter_episodes(path)] == [1, 3, 4]
    assert read_info(path)["counts"] == {"PickCube-v1": 2, "PushCube-v1": 1}


def test_appending_with_other_control_mode_is_refused(tmp_path):
    path = tmp_path / "demos.h5"
    with DemoWriter(path, STATE_META) as writer:
        writer.add(episode(1))
    other = DatasetMeta(obs_mode="state", control_mode="pd_joint_pos", state_dim=3, action_dim=2)
    with pytest.raises(ConfigError, match="control_mode"):
        DemoWriter(path, other)


def test_load_demos_few_shot_takes_first_n_per_task(tmp_path):
    path = tmp_path / "demos.h5"
    with DemoWriter(path, STATE_META) as writer:
        for seed in (10, 11, 12):
            writer.add(episode(seed))
        writer.add(episode(20, task="PushCube-v1"))
    _, eps = load_demos(path, "state", "pd_ee_delta_pose", num_demos=2)
    assert [(e.task, e.seed) for e in eps] == [
        ("PickCube-v1", 10),
        ("PickCube-v1", 11),
        ("PushCube-v1", 20),
    ]
    _, only_push = load_demos(path, "state", "pd_ee_delta_pose", tasks=["PushCube-v1"])
    assert [e.seed for e in only_push] == [20]


def test_obs_mode_mismatch_names_both_modes(tmp_path):
    path = tmp_path / "demos.h5"
    with DemoWriter(path, STATE_META) as writer:
        writer.add(episode(1))
    with pytest.raises(ConfigError, match=r"obs_mode='state'.*env.obs_mode='rgb'"):
        load_demos(path, "rgb", "pd_ee_delta_pose")


def test_missing_task_lists_what_the_file_holds(tmp_path):
    path = tmp_path / "demos.h5"
    with DemoWriter(path, STATE_META) as writer:
        writer.add(episode(1))
    with pytest.raises(ConfigError, match="PickCube-v1"):
        load_demos(path, "state", "pd_ee_delta_pose", tasks=["StackCube-v1"])


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"this is not hdf5 at all" * 10, "corrupt")],
)
def test_empty_or_corrupt_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "demos.h5"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_demos(path, "state", "pd_ee_delta_pose")


def test_hdf5_file_of_another_kind_is_rejected(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ConfigError, match="not an rl_post demo file"):
        read_info(path)


def test_missing_file_points_to_collect_demos(tmp_path):
    with pytest.raises(ConfigError, match="collect-demos"):
        load_demos(tmp_path / "nope.h5", "state", "pd_ee_delta_pose")


def test_episode_shape_errors_are_caught_before_writing(tmp_path):
    bad = episode(1)
    bad.actions = bad.actions[:, :1]
    with (
        DemoWriter(tmp_path / "d.h5", STATE_META) as writer,
        pytest.raises(ValueError, match="actions"),
    ):
        writer.add(bad)
    with DemoWriter(tmp_path / "rgb.h5", RGB_META) as writer:
        with pytest.raises(ValueError, match="rgb"):
            writer.add(episode(2))

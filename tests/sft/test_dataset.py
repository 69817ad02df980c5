"""Action-chunk targets, padding/masking at episode ends, and the train/val episode split."""

from __future__ import annotations

import numpy as np
import pytest

from rl_post.config import ConfigError
from rl_post.data.demos import DemoEpisode
from rl_post.sft.dataset import build_bc_data, chunk_targets, split_episodes


def test_chunk_targets_pad_with_last_action_and_mask_it():
    actions = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    chunks, mask = chunk_targets(actions, horizon=2)
    np.testing.assert_array_equal(chunks[..., 0], [[1, 2], [2, 3], [3, 3]])
    np.testing.assert_array_equal(mask, [[True, True], [True, True], [True, False]])


def test_chunk_longer_than_episode():
    chunks, mask = chunk_targets(np.array([[5.0, -5.0]]), horizon=3)
    assert chunks.shape == (1, 3, 2)
    np.testing.assert_array_equal(chunks[0], [[5, -5]] * 3)
    np.testing.assert_array_equal(mask, [[True, False, False]])


def demo(task: str, seed: int, length: int = 2, dim: int = 2) -> DemoEpisode:
    return DemoEpisode(
        task=task,
        seed=seed,
        instruction=task.lower(),
        state=np.full((length, dim), seed, dtype=np.float32),
        actions=np.full((length, 1), seed, dtype=np.float32),
        success=True,
    )


def test_bc_data_pads_narrow_states_and_keeps_instructions():
    data = build_bc_data(
        [demo("A", 1), demo("B", 2, length=3, dim=1)], 2, state_dim=2, use_rgb=False
    )
    assert len(data) == 5
    np.testing.assert_array_equal(data.state[2:].numpy(), [[2, 0]] * 3)
    obs, chunks, mask = data.batch(np.array([0, 4]))
    assert obs["instruction"] == ["a", "b"]
    assert chunks.shape == (2, 2, 1) and mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(ConfigError, match="dims"):
        build_bc_data([demo("A", 1, dim=3)], 2, state_dim=2, use_rgb=False)


def test_split_trains_on_first_n_and_validates_on_the_next():
    eps = [demo("A", s) for s in range(5)] + [demo("B", s) for s in (10, 11, 12)]
    train, val = split_episodes(eps, num_train=2, num_val=1)
    assert [(e.task, e.seed) for e in train] == [("A", 0), ("A", 1), ("B", 10), ("B", 11)]
    assert [(e.task, e.seed) for e in val] == [("A", 2), ("B", 12)]
    train, val = split_episodes(eps, num_train=None, num_val=1)
    assert [e.seed for e in val] == [4, 12]
    with pytest.raises(ConfigError, match="collect more"):
        split_episodes(eps, num_train=3, num_val=1)

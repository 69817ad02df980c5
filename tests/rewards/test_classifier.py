import json

import numpy as np
import pytest
import torch

from rl_post.config import ConfigError, load_config
from rl_post.rewards.classifier import (
    ClassifierConfig,
    SuccessClassifier,
    load_classifier,
    save_classifier,
)
from rl_post.rewards.dataset import LabelledSet, concat
from rl_post.rewards.train import fit_classifier, parse_fit_settings, split_by_episode


def synthetic_set(episodes: int, frames: int, seed: int) -> LabelledSet:
    """Success iff x0 + 0.5 * x1 > 1 (an oblique boundary; x2..x5 are distractors, x5 constant)."""
    rng = np.random.default_rng(seed)
    state = rng.normal(size=(episodes * frames, 6)).astype(np.float32)
    state[:, 5] = 3.0
    label = state[:, 0] + 0.5 * state[:, 1] > 1.0
    episode = np.repeat(np.arange(episodes), frames)
    return LabelledSet(state, label, episode)


def fit_settings(**changes):
    cfg = load_config(
        "reward_train",
        [
            "reward_train.fit.epochs=15",
            "reward_train.fit.batch_size=32",
            "reward_train.model.hidden=[32]",
        ],
    )
    settings = parse_fit_settings(cfg)
    return settings.__class__(**{**settings.__dict__, **changes})


def test_training_beats_chance_on_held_out_episodes():
    model, report = fit_classifier(synthetic_set(60, 10, seed=0), fit_settings())
    assert report["split"]["val"]["examples"] > 0
    assert report["val"]["auroc"] > 0.9  # chance is 0.5
    assert report["val"]["recall"] > 0.6
    assert report["pos_weight"] > 1.0  # ~20% positives are up-weighted


def test_split_keeps_episodes_whole_and_both_classes_held_out():
    data = synthetic_set(40, 5, seed=1)
    train_rows, val_rows = split_by_episode(data, 0.25, seed=0)
    assert not set(data.episode[train_rows]) & set(data.episode[val_rows])
    assert len(train_rows) + len(val_rows) == len(data)
    assert data.label[val_rows].any() and (~data.label[val_rows]).any()


def test_single_class_training_data_is_rejected():
    data = synthetic_set(10, 4, seed=0)
    data.label[:] = False
    with pytest.raises(ConfigError, match="both classes"):
        fit_classifier(data, fit_settings())


def test_concat_renumbers_episodes():
    a, b = synthetic_set(3, 2, 0), synthetic_set(2, 2, 1)
    joined = concat([a, b])
    assert len(np.unique(joined.episode)) == 5


def test_checkpoint_round_trip_and_wrong_kind_errors(tmp_path):
    model = SuccessClassifier(ClassifierConfig(state_dim=4, hidden=(8,)))
    model.set_normalization(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([2.0, 0.0, 1.0, 1.0]))
    path = save_classifier(model, tmp_path / "clf", extra_meta={"note": "test"})
    loaded = load_classifier(path)
    obs = {"state": torch.randn(5, 4)}
    torch.testing.assert_close(loaded.predict_proba(obs), model.predict_proba(obs))
    assert loaded.state_std.tolist() == [2.0, 1.0, 1.0, 1.0]  # zero std left unscaled

    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "meta.json").write_text(
        json.dumps({"format": "rl_post.policy", "format_version": 1})
    )
    with pytest.raises(ConfigError, match="policy checkpoint, not a reward classifier"):
        load_classifier(policy_dir)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ConfigError, match="format version 99"):
        load_classifier(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_classifier(tmp_path / "missing")


def test_rgb_classifier_forward_and_training_on_images():
    # success iff the image is bright: the state alone carries no signal.
    rng = np.random.default_rng(0)
    n = 160
    bright = rng.random(n) > 0.5
    rgb = rng.integers(0, 60, size=(n, 1, 8, 8, 3)).astype(np.uint8)
    rgb[bright] += 150
    data = LabelledSet(rng.normal(size=(n, 3)).astype(np.float32), bright, np.arange(n), rgb=rgb)
    settings = fit_settings(use_rgb=True, conv_channels=(4, 8), epochs=20)
    model, report = fit_classifier(data, settings)
    assert model.config.use_rgb and model.config.num_cameras == 1
    assert report["val"]["auroc"] > 0.9

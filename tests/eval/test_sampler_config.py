"""eval.sampler: runtime overrides of a checkpoint's model config for stochastic evaluation."""

import pytest

from rl_post.config import ConfigError
from rl_post.eval.run import sampler_config
from rl_post.models.checkpoint import load_policy, save_policy
from tests.models.helpers import make_policy


def test_overrides_replace_only_the_given_runtime_keys(tmp_path):
    save_policy(make_policy("flow_tiny"), tmp_path / "policy")
    path = str(tmp_path / "policy")
    assert sampler_config(path, {"sampler": None, "noise_level": None}) is None
    assert sampler_config(path, None) is None
    cfg = sampler_config(path, {"sampler": "flow_sde", "noise_level": 0.2, "temperature": None})
    assert cfg["sampler"] == "flow_sde" and cfg["noise_level"] == 0.2
    assert cfg["d_model"] == 64 and cfg["temperature"] == 1.0
    policy = load_policy(path, expect_config=cfg)
    assert policy.config.sampler == "flow_sde" and policy.config.noise_level == 0.2


def test_a_bad_override_is_a_config_error(tmp_path):
    save_policy(make_policy("flow_tiny"), tmp_path / "policy")
    cfg = sampler_config(str(tmp_path / "policy"), {"sampler": "euler"})
    with pytest.raises(ConfigError, match="sampler"):
        load_policy(str(tmp_path / "policy"), expect_config=cfg)

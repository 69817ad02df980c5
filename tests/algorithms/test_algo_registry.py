import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rl_post.algorithms.registry import (
    ALGORITHMS,
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    get_algo_spec,
    uses_critic,
    validate_algo_cfg,
)
from rl_post.config import ConfigError, load_config

ALGO_DIR = Path(__file__).resolve().parents[2] / "configs" / "algo"


def test_registry_names_and_critic_use():
    assert sorted(ALGORITHMS) == ["grpo", "ppo", "rloo"]
    assert get_algo_spec("ppo").advantage == "gae" and get_algo_spec("ppo").uses_critic
    assert not get_algo_spec("grpo").uses_critic and get_algo_spec("rloo").advantage == "rloo"
    with pytest.raises(ConfigError, match="valid choices: grpo, ppo, rloo"):
        get_algo_spec("sac")


@pytest.mark.parametrize("name", ["ppo", "grpo", "rloo"])
def test_algo_configs_share_one_key_set_and_validate(name):
    cfg = OmegaConf.load(ALGO_DIR / f"{name}.yaml")
    assert sorted(cfg.keys()) == sorted(REQUIRED_KEYS + OPTIONAL_KEYS)
    assert cfg.name == name
    assert validate_algo_cfg(cfg).name == name
    assert uses_critic(cfg) == (name == "ppo")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": "a2c"}, "valid choices: grpo, ppo, rloo"),
        ({"advantage": "grpo"}, "uses advantage 'gae'"),
        ({"logprob_level": "step"}, "valid choices: token, action, chunk"),
        ({"loss_agg": "sum"}, "valid choices: token-mean, seq-mean"),
        ({"kl_estimator": "k2"}, "valid choices: k1, k3"),
        ({"dual_clip": 1.0}, "dual_clip must be null"),
        ({"gamma": 1.5}, "gamma must be in"),
        ({"value_clip": -0.1}, "value_clip must be null"),
        ({"noise_lr": -1e-3}, "noise_lr must be null"),
        ({"bootstrap_terminations": "yes"}, "bootstrap_terminations must be true or false"),
        (
            {"dynamic_sampling.min_success_rate": 0.9, "dynamic_sampling.max_success_rate": 0.1},
            "min_success_rate <= max_success_rate",
        ),
    ],
)
def test_bad_values_name_the_problem(override, message):
    cfg = OmegaConf.load(ALGO_DIR / "ppo.yaml")
    for key, value in override.items():
        OmegaConf.update(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        validate_algo_cfg(cfg)


def test_a_recorded_config_without_the_optional_keys_still_validates():
    # resume= replays a run's recorded config, which may predate noise_lr
    cfg = OmegaConf.load(ALGO_DIR / "ppo.yaml")
    for key in OPTIONAL_KEYS:
        del cfg[key]
    assert validate_algo_cfg(cfg).name == "ppo"


def test_adaptive_lr_kl_part_is_checked_and_optional():
    cfg = OmegaConf.load(ALGO_DIR / "ppo.yaml")
    cfg.adaptive_lr.kl_part = "sigma"
    with pytest.raises(ConfigError, match="kl_part 'sigma'; valid choices: total, mean"):
        validate_algo_cfg(cfg)
    cfg = OmegaConf.to_container(OmegaConf.load(ALGO_DIR / "ppo.yaml"))
    cfg["adaptive_lr"]["kl_prt"] = "mean"
    with pytest.raises(ConfigError, match=r"unknown keys \['kl_prt'\]"):
        validate_algo_cfg(cfg)
    del cfg["adaptive_lr"]["kl_prt"], cfg["adaptive_lr"]["kl_part"]  # a recorded config
    assert validate_algo_cfg(cfg).name == "ppo"


def test_group_algorithms_need_groups():
    cfg = OmegaConf.load(ALGO_DIR / "grpo.yaml")
    cfg.group_size = 1
    with pytest.raises(ConfigError, match="group_size must be >= 2"):
        validate_algo_cfg(cfg)


def test_bootstrapped_terminations_need_a_critic():
    cfg = OmegaConf.load(ALGO_DIR / "rloo.yaml")
    cfg.bootstrap_terminations = True
    with pytest.raises(ConfigError, match="needs a critic"):
        validate_algo_cfg(cfg)


def test_missing_key_is_reported():
    cfg = OmegaConf.to_container(OmegaConf.load(ALGO_DIR / "ppo.yaml"))
    del cfg["kl_coef"]
    with pytest.raises(ConfigError, match="kl_coef"):
        validate_algo_cfg(cfg)


def test_hydra_selects_algorithms_by_name_with_overrides(tmp_path, monkeypatch):
    shutil.copytree(ALGO_DIR, tmp_path / "algo")
    (tmp_path / "only_algo.yaml").write_text("defaults:\n  - algo: ppo\n  - _self_\n")
    monkeypatch.setenv("RL_POST_CONFIG_DIR", str(tmp_path))
    cfg = load_config("only_algo", ["algo=rloo", "algo.clip_eps_high=0.3"])
    assert cfg.algo.name == "rloo" and cfg.algo.clip_eps_high == 0.3
    validate_algo_cfg(cfg.algo)
    with pytest.raises(ConfigError, match="valid choices: grpo, ppo, rloo"):
        load_config("only_algo", ["algo=sac"])

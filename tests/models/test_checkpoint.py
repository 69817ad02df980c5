import json

import pytest
import torch

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models import check_checkpoint_compatible, load_policy, save_policy
from rl_post.models.checkpoint import META_FILE, WEIGHTS_FILE

from .helpers import RGB_SPEC, STATE_SPEC, make_obs, make_policy, model_config


@pytest.mark.parametrize("name", ["flow_tiny", "token_tiny"])
def test_round_trip_gives_identical_outputs(tmp_path, name):
    policy = make_policy(name, spec=RGB_SPEC)
    policy.set_normalization(
        {"state_mean": torch.full((9,), 0.5), "state_std": torch.full((9,), 2.0)}
    )
    save_policy(policy, tmp_path / "ckpt", extra_meta={"iteration": 7})
    loaded = load_policy(tmp_path / "ckpt")
    obs = make_obs(6, rgb=True)
    a = policy.act(obs, generator=torch.Generator().manual_seed(1))
    b = loaded.act(obs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.logprob, b.logprob)
    assert torch.equal(a.value, b.value)
    assert torch.equal(
        policy.evaluate(obs, a.stored).logprob, loaded.evaluate(obs, a.stored).logprob
    )
    for key, value in policy.normalization_stats().items():
        assert torch.equal(loaded.normalization_stats()[key], value), key
    meta = json.loads((tmp_path / "ckpt" / META_FILE).read_text())
    assert meta["extra"] == {"iteration": 7} and meta["kind"] == policy.kind


def test_unbounded_env_round_trips(tmp_path):
    spec = ObsSpec(state_dim=9, action_dim=4)
    policy = make_policy("flow_tiny", spec=spec)
    save_policy(policy, tmp_path / "c")
    loaded = load_policy(tmp_path / "c")
    assert torch.all(torch.isinf(loaded.normalization_stats()["env_high"]))


def test_wrong_kind_names_problem_and_fix(tmp_path):
    save_policy(make_policy("token_tiny"), tmp_path / "tok")
    with pytest.raises(ConfigError, match=r"'token' policy.*kind 'flow'.*model=token_tiny"):
        load_policy(tmp_path / "tok", expect_config=model_config("flow_tiny"))
    with pytest.raises(ConfigError, match="kind 'flow'"):
        check_checkpoint_compatible(tmp_path / "tok", model_config("flow_tiny"), STATE_SPEC)


def test_architecture_mismatch_is_reported(tmp_path):
    save_policy(make_policy("flow_tiny"), tmp_path / "c")
    with pytest.raises(ConfigError, match=r"d_model: checkpoint 64 vs config 128"):
        load_policy(tmp_path / "c", expect_config=model_config("flow_tiny", d_model=128))


def test_missing_directory_file_and_version(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nowhere")
    folder = save_policy(make_policy("flow_tiny"), tmp_path / "c")
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(ConfigError, match=WEIGHTS_FILE):
        load_policy(folder)
    folder = save_policy(make_policy("flow_tiny"), tmp_path / "d")
    meta = json.loads((folder / META_FILE).read_text())
    meta["format_version"] = 99
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="format version 99.*reads version 1"):
        load_policy(folder)
    (folder / META_FILE).unlink()
    with pytest.raises(ConfigError, match="meta.json"):
        load_policy(folder)


def test_training_checkpoint_directory_loads_its_policy(tmp_path):
    policy = make_policy("flow_tiny")
    save_policy(policy, tmp_path / "iter_000010" / "policy")
    (tmp_path / "iter_000010" / "learner").mkdir()
    loaded = load_policy(tmp_path / "iter_000010")
    expected, actual = policy.state_dict(), loaded.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)


def test_runtime_keys_may_change_and_a_missing_critic_starts_fresh(tmp_path):
    sft = make_policy("flow_tiny", value_head=False, sampler="ode")
    save_policy(sft, tmp_path / "sft")
    rl_cfg = model_config("flow_tiny", value_head=True, sampler="flow_sde", num_denoise_steps=6)
    loaded = load_policy(tmp_path / "sft", expect_config=rl_cfg, spec=STATE_SPEC)
    assert loaded.has_value_head and loaded.num_steps == 6
    assert torch.equal(loaded.expert.velocity_out.weight, sft.expert.velocity_out.weight)
    out = loaded.act(make_obs(3))
    assert out.value is not None and out.logprob.abs().sum() > 0


def test_compatibility_with_env_spec(tmp_path):
    save_policy(make_policy("flow_tiny", spec=RGB_SPEC), tmp_path / "c")
    check_checkpoint_compatible(tmp_path / "c", model_config("flow_tiny"), RGB_SPEC)
    other = ObsSpec(state_dim=12, action_dim=4, cameras=("base_camera",))
    with pytest.raises(ConfigError, match=r"state_dim 9 vs env 12.*cameras"):
        check_checkpoint_compatible(tmp_path / "c", model_config("flow_tiny"), other)
    with pytest.raises(ConfigError, match="action_horizon"):
        check_checkpoint_compatible(
            tmp_path / "c", model_config("flow_tiny", action_horizon=8), RGB_SPEC
        )


def test_a_different_critic_starts_fresh_and_the_policy_weights_load(tmp_path):
    policy = make_policy("flow_tiny")
    save_policy(policy, tmp_path / "ckpt")
    wanted = model_config("flow_tiny", value_input="state", value_hidden=32, value_layers=2)
    loaded = load_policy(tmp_path / "ckpt", expect_config=wanted)
    assert type(loaded.value_head).__name__ == "StateValueHead"
    for name, tensor in policy.state_dict().items():
        if not name.startswith("value_head."):
            assert torch.equal(loaded.state_dict()[name], tensor), name
    obs = make_obs(3)
    assert loaded.value(obs).shape == (3,)

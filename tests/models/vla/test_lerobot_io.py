"""LeRobot pretrained_model/ folders: the layout rl_post writes, strict loading, clear errors."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from rl_post.config import ConfigError
from rl_post.envs.spec import ObsSpec
from rl_post.models import check_checkpoint_compatible, load_policy, read_checkpoint, save_policy
from rl_post.models.vla.lerobot_io import HEADS_FILE, RL_POST_FILE, WEIGHTS_FILE

from .helpers import SPEC, make_obs, make_policy, tiny_config

KINDS = ["smolvla", "pi0"]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def _with_stats(policy):
    """Non-trivial normalization, so a round trip that dropped it would show."""
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        policy.normalizer.state_a.copy_(torch.randn(policy.layout.state_dim, generator=gen))
        policy.normalizer.state_b.copy_(torch.rand(policy.layout.state_dim, generator=gen) + 0.5)
        policy.normalizer.action_a.copy_(torch.randn(policy.action_dim, generator=gen) * 0.1)
        policy.normalizer.action_b.copy_(torch.rand(policy.action_dim, generator=gen) + 0.2)
        policy.noise_head.mlp[-1].bias.add_(0.3)  # heads away from their zero init
    return policy


def _ode(policy, obs):
    return policy.act(obs, "deterministic", generator=torch.Generator().manual_seed(1)).actions


def _outputs(policy, obs):
    out = policy.act(obs, generator=torch.Generator().manual_seed(2))
    return out.actions, out.logprob, out.value, out.stored["chain"]


@pytest.mark.parametrize("train", ["expert", "lora", "all"])
def test_save_then_load_gives_identical_outputs(tmp_path, kind, train):
    policy = _with_stats(make_policy(kind, train=train))
    if train == "lora":  # adapters away from B = 0, so merging them matters
        with torch.no_grad():
            for name, p in policy.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.05)
    obs = make_obs(3)
    save_policy(policy, tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt", expect_config=tiny_config(kind, train=train), spec=SPEC)
    for a, b in zip(_outputs(policy, obs), _outputs(loaded, obs), strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    again = load_policy(tmp_path / "ckpt")  # config and env interface from rl_post.json
    assert torch.allclose(_outputs(again, obs)[0], _outputs(policy, obs)[0], atol=1e-5)


def test_layout_is_lerobots(tmp_path, kind):
    policy = _with_stats(make_policy(kind))
    folder = save_policy(policy, tmp_path / "ckpt")
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        WEIGHTS_FILE,
        "policy_preprocessor.json",
        "policy_preprocessor_step_5_normalizer_processor.safetensors",
        "policy_postprocessor.json",
        "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
        "tokenizer.json",
        HEADS_FILE,
        RL_POST_FILE,
    } <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["type"] == kind and config["chunk_size"] == policy.action_horizon
    assert config["output_features"] == {"action": {"type": "ACTION", "shape": [4]}}
    assert config["input_features"]["observation.state"] == {"type": "STATE", "shape": [9]}
    weights = load_file(str(folder / WEIGHTS_FILE))
    assert all(k.startswith("model.") for k in weights)
    prefix = (
        "model.vlm_with_expert.lm_expert."
        if kind == "smolvla"
        else "model.paligemma_with_expert.gemma_expert."
    )
    assert any(k.startswith(prefix) for k in weights)
    assert not any("noise_head" in k or "value_head" in k or "lora" in k for k in weights)
    stats = load_file(str(folder / "policy_preprocessor_step_5_normalizer_processor.safetensors"))
    assert set(stats) == {
        "observation.state.mean",
        "observation.state.std",
        "action.mean",
        "action.std",
    }
    assert torch.equal(stats["observation.state.std"], policy.normalizer.state_b)
    pre = json.loads((folder / "policy_preprocessor.json").read_text())
    assert [s["registry_name"] for s in pre["steps"]][3:] == [
        "tokenizer_processor",
        "device_processor",
        "normalizer_processor",
    ]


def test_plain_lerobot_folder_loads_with_fresh_rl_heads(tmp_path, kind, caplog):
    policy = _with_stats(make_policy(kind))
    folder = save_policy(policy, tmp_path / "ckpt")
    (folder / RL_POST_FILE).unlink()
    (folder / HEADS_FILE).unlink()
    loaded = load_policy(
        folder, expect_config=tiny_config(kind, tokenizer_path=str(folder)), spec=SPEC
    )
    assert "freshly initialised" in caplog.text
    obs = make_obs(2)
    assert torch.allclose(_ode(loaded, obs), _ode(policy, obs), atol=1e-5)
    with pytest.raises(ConfigError, match="plain LeRobot folder"):
        load_policy(folder)  # without a model config there is nothing to build


def _edit_weights(folder, edit):
    weights = load_file(str(folder / WEIGHTS_FILE))
    edit(weights)
    save_file(weights, str(folder / WEIGHTS_FILE))


def test_missing_unexpected_and_misshapen_weights_are_named(tmp_path, kind):
    folder = save_policy(make_policy(kind), tmp_path / "ckpt")
    cfg = tiny_config(kind)
    key = "model.action_in_proj.weight"
    _edit_weights(folder, lambda w: w.pop(key))
    with pytest.raises(ConfigError, match=r"1 missing \['model.action_in_proj.weight'\]"):
        load_policy(folder, expect_config=cfg, spec=SPEC)
    _edit_weights(
        folder, lambda w: w.update({key: torch.zeros(3, 3), "model.extra.bias": torch.zeros(2)})
    )
    with pytest.raises(ConfigError) as err:
        load_policy(folder, expect_config=cfg, spec=SPEC)
    assert "unexpected ['model.extra.bias']" in str(err.value)
    assert "model.action_in_proj.weight: file (3, 3)" in str(err.value)


def test_old_format_normalization_buffers_point_to_the_migration(tmp_path):
    folder = save_policy(make_policy("smolvla"), tmp_path / "ckpt")
    _edit_weights(
        folder,
        lambda w: w.update({"normalize_inputs.buffer_observation_state.mean": torch.zeros(9)}),
    )
    with pytest.raises(ConfigError, match="migrate_policy_normalization"):
        load_policy(folder, expect_config=tiny_config("smolvla"), spec=SPEC)


def test_architecture_and_interface_mismatches_are_named_before_loading(tmp_path, kind):
    folder = save_policy(make_policy(kind), tmp_path / "ckpt")
    with pytest.raises(ConfigError, match=r"chunk_size=5 but model.action_horizon=6"):
        check_checkpoint_compatible(
            folder, tiny_config(kind, action_horizon=6, execute_steps=3), SPEC
        )
    renamed = {"observation.images.top": "base_camera", "observation.images.wrist": "hand_camera"}
    with pytest.raises(ConfigError, match="image keys"):
        check_checkpoint_compatible(folder, tiny_config(kind, obs={"cameras": renamed}), SPEC)
    with pytest.raises(ConfigError, match=r"observation.state has shape \[9\]"):
        check_checkpoint_compatible(
            folder, tiny_config(kind, obs={"state_indices": [0, 1, 2]}), SPEC
        )
    other_control = ObsSpec(
        state_dim=9, action_dim=7, cameras=SPEC.cameras, image_size=SPEC.image_size
    )
    with pytest.raises(ConfigError, match=r"predicts 4-dim actions .* takes 7"):
        check_checkpoint_compatible(folder, tiny_config(kind), other_control)
    other = "pi0" if kind == "smolvla" else "smolvla"
    with pytest.raises(ConfigError, match=f"model={kind}"):
        check_checkpoint_compatible(folder, tiny_config(other), SPEC)


def test_a_named_tokenizer_needs_tokenizer_files(tmp_path):
    folder = save_policy(make_policy("smolvla"), tmp_path / "ckpt")
    pre = json.loads((folder / "policy_preprocessor.json").read_text())
    pre["steps"][3]["config"]["tokenizer_name"] = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    (folder / "policy_preprocessor.json").write_text(json.dumps(pre))
    with pytest.raises(ConfigError, match="model.tokenizer_path="):
        load_policy(folder, expect_config=tiny_config("smolvla"), spec=SPEC)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink()
    with pytest.raises(ConfigError, match="no tokenizer files"):
        load_policy(
            folder, expect_config=tiny_config("smolvla", tokenizer_path=str(folder)), spec=SPEC
        )


def test_training_checkpoint_directory_and_read_checkpoint(tmp_path, kind):
    policy = make_policy(kind)
    save_policy(policy, tmp_path / "iter_000001" / "policy", extra_meta={"iteration": 1})
    info = read_checkpoint(tmp_path / "iter_000001")
    assert info.model_config.kind == kind and info.spec == SPEC
    assert info.meta["extra"] == {"iteration": 1}
    loaded = load_policy(tmp_path / "iter_000001")
    obs = make_obs(2)
    assert torch.allclose(_ode(loaded, obs), _ode(policy, obs), atol=1e-5)
    shutil.rmtree(tmp_path / "iter_000001")

"""The VLA model configs: the shipped YAMLs parse, the real ones have the published sizes, bad
keys and impossible shapes are clear errors."""

import pytest
import torch

from rl_post.config import ConfigError, load_config
from rl_post.models.config import parse_model_config
from rl_post.models.vla.config import VLAModelConfig

from .helpers import SPEC, make_policy, tiny_config


def _model(name: str) -> VLAModelConfig:
    cfg = parse_model_config(load_config("train", [f"model={name}", "env.obs_mode=rgb"]).model)
    assert isinstance(cfg, VLAModelConfig)
    return cfg


@pytest.mark.parametrize(
    ("name", "published_millions", "unused_millions"),
    [("smolvla", 450, 0), ("pi0", 3300, 263.3)],
)
def test_real_configs_have_the_published_parameter_counts(
    name, published_millions, unused_millions
):
    """SmolVLA ~450M (arXiv 2506.01844); pi0 3.3B = PaliGemma 3B + a 300M expert (arXiv
    2410.24164). LeRobot's pi0 also stores the expert's unused, untied lm_head (263M)."""
    from rl_post.models.vla.pi0_model import PI0Model
    from rl_post.models.vla.smolvla_model import SmolVLAModel

    cfg = _model(name)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        net = (SmolVLAModel if name == "smolvla" else PI0Model)(cfg)
    count = sum(p.numel() for p in net.parameters()) / 1e6
    assert abs(count - unused_millions - published_millions) / published_millions < 0.03


@pytest.mark.parametrize("name", ["smolvla_tiny", "pi0_tiny"])
def test_tiny_configs_build_from_the_yaml(name):
    from rl_post.models import build_policy

    cfg = load_config("train", [f"model={name}", "env.obs_mode=rgb"]).model
    policy = build_policy(cfg, SPEC)
    assert policy.kind == name.split("_")[0]
    assert sum(p.numel() for p in policy.parameters()) < 2_000_000


def test_unknown_key_and_bad_choices_are_named():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['chunk_size'\]"):
        parse_model_config(tiny_config("smolvla", chunk_size=50))
    with pytest.raises(ConfigError, match="model.train='everything'"):
        parse_model_config(tiny_config("smolvla", train="everything"))
    with pytest.raises(ConfigError, match="VISUAL must be IDENTITY"):
        parse_model_config(
            tiny_config(
                "pi0",
                normalization_mapping={
                    "VISUAL": "MEAN_STD",
                    "STATE": "MEAN_STD",
                    "ACTION": "MEAN_STD",
                },
            )
        )


def test_pi0_needs_matching_attention_shapes_for_merged_layers():
    variants = {
        "a": {
            "width": 64,
            "depth": 2,
            "mlp_dim": 64,
            "num_heads": 4,
            "num_kv_heads": 1,
            "head_dim": 16,
        },
        "b": {
            "width": 32,
            "depth": 3,
            "mlp_dim": 64,
            "num_heads": 4,
            "num_kv_heads": 1,
            "head_dim": 16,
        },
    }
    with pytest.raises(ConfigError, match="depth must agree"):
        parse_model_config(
            tiny_config(
                "pi0", gemma_variants=variants, paligemma_variant="a", action_expert_variant="b"
            )
        )


def test_state_and_action_sizes_beyond_the_padded_space_are_errors():
    with pytest.raises(ConfigError, match="max_state_dim=4"):
        make_policy("smolvla", max_state_dim=4)
    with pytest.raises(ConfigError, match="outside the env's state"):
        make_policy("smolvla", obs={"state_indices": [0, 99]})
    with pytest.raises(ConfigError, match="does not render"):
        make_policy("pi0", obs={"cameras": {"observation.images.top": "side_camera"}})

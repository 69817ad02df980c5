import pytest
import torch

from rl_post.config import ConfigError
from rl_post.models import build_policy, parse_model_config
from rl_post.models.tokenizer import PAD_ID, InstructionTokenizer

from .helpers import CONFIG_DIR, STATE_SPEC, model_config


def test_hashed_words_are_stable_padded_and_cached():
    tok = InstructionTokenizer("hashed_words", vocab_size=64, max_tokens=6, cache_size=2)
    ids = tok(["Pick up the cube", "pick up  the cube", ""], torch.device("cpu"))
    assert ids.shape == (3, 6)
    assert torch.equal(ids[0], ids[1])  # case and spacing do not matter
    assert ids[0, :4].min() >= 1 and torch.all(ids[0, 4:] == PAD_ID)
    assert torch.all(ids[2] == PAD_ID)
    again = tok(["Pick up the cube", "pick up  the cube", ""], torch.device("cpu"))
    assert again is ids  # the repeated batch is served from the cache
    fresh = InstructionTokenizer("hashed_words", vocab_size=64, max_tokens=6, cache_size=2)
    assert torch.equal(fresh(["pick up the cube"], torch.device("cpu"))[0], ids[0])


def test_bytes_tokenizer_truncates():
    tok = InstructionTokenizer("bytes", vocab_size=0, max_tokens=3, cache_size=8)
    assert tok(["abcd"], torch.device("cpu")).tolist() == [[98, 99, 100]]
    assert tok.vocab_size == 257


# The real VLAs (smolvla*, pi0*) need camera images and are hundreds of millions of parameters;
# tests/models/vla/test_config.py builds their tiny configs and counts the real ones' parameters.
SMALL_MODEL_CONFIGS = [
    p for p in sorted(CONFIG_DIR.glob("*.yaml")) if not p.stem.startswith(("smolvla", "pi0"))
]


@pytest.mark.parametrize("path", SMALL_MODEL_CONFIGS, ids=lambda p: p.stem)
def test_every_model_config_builds(path):
    cfg = parse_model_config(model_config(path.stem))
    assert cfg.name == path.stem and cfg.execute_steps <= cfg.action_horizon
    policy = build_policy(cfg, STATE_SPEC)
    assert policy.kind == cfg.kind


def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="valid keys"):
        parse_model_config(model_config("flow_tiny", smapler="ode"))
    with pytest.raises(ConfigError, match="choose one of flow_noise, flow_sde, ode"):
        parse_model_config(model_config("flow_tiny", sampler="ddpm"))
    with pytest.raises(ConfigError, match="execute_steps"):
        parse_model_config(model_config("flow_tiny", execute_steps=9))
    with pytest.raises(ConfigError, match="kind"):
        parse_model_config(model_config("flow_tiny", kind="diffusion"))

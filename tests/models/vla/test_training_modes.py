"""model.train: what is trainable (expert / lora / all), LoRA merging, what is published."""

import pytest
import torch

from rl_post.config import ConfigError
from rl_post.models.vla.training import has_lora, merged_state_dict

from .helpers import make_obs, make_policy

KINDS = ["smolvla", "pi0"]


def _trainable(policy) -> set[str]:
    return {n for n, p in policy.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("kind", KINDS)
def test_expert_mode_freezes_the_whole_vlm(kind):
    policy = make_policy(kind, train="expert")
    vlm = {id(p) for p in policy.vlm_module().parameters()}
    trainable = [p for p in policy.parameters() if p.requires_grad]
    assert trainable and not any(id(p) in vlm for p in trainable)
    names = _trainable(policy)
    assert "model.action_in_proj.weight" in names and "model.state_proj.weight" in names
    assert any(n.startswith("noise_head.") for n in names)
    assert any(n.startswith("value_head.") for n in names)


@pytest.mark.parametrize("kind", KINDS)
def test_all_mode_trains_the_vlm_but_not_vision_or_lm_heads(kind):
    policy = make_policy(kind, train="all", freeze_vision=True)
    vision = {id(p) for p in policy.vision_module().parameters()}
    unused = {id(p) for p in policy.unused_parameters()}
    trainable = [p for p in policy.parameters() if p.requires_grad]
    assert not any(id(p) in vision or id(p) in unused for p in trainable)
    language = [n for n in _trainable(policy) if ".layers.0.self_attn.q_proj" in n]
    assert len(language) == 2  # the VLM's and the expert's first layer
    thawed = make_policy(kind, train="all", freeze_vision=False)
    assert all(p.requires_grad for p in thawed.vision_module().parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_lora_adapts_the_vlm_and_starts_as_the_base_model(kind):
    base = make_policy(kind, train="expert", seed=3)
    lora = make_policy(kind, train="lora", seed=3)
    assert has_lora(lora) and not has_lora(base)
    vlm_trainable = [n for n, p in lora.vlm_module().named_parameters() if p.requires_grad]
    assert vlm_trainable and all(".lora_" in n for n in vlm_trainable)
    obs = make_obs(2)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = base.act(obs, "deterministic", generator=gen()).actions
    b = lora.act(obs, "deterministic", generator=gen()).actions
    assert torch.allclose(a, b, atol=1e-6)  # B = 0 at start
    # the merged plain state dict is the base layout, and reproduces the adapted function
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)
    adapted = lora.act(obs, "deterministic", generator=gen()).actions
    assert not torch.allclose(adapted, a, atol=1e-4)
    merged = merged_state_dict(lora.model)
    assert set(merged) == set(base.model.state_dict())
    base.model.load_state_dict(merged)
    assert torch.allclose(
        base.act(obs, "deterministic", generator=gen()).actions, adapted, atol=1e-5
    )


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_lora_adapters(kind):
    policy = make_policy(kind, train="lora")
    obs = make_obs(2)
    out = policy.act(obs, generator=torch.Generator().manual_seed(0))
    policy.evaluate(obs, out.stored).logprob.sum().backward()
    lora_a = [p for n, p in policy.named_parameters() if "lora_B" in n]
    assert lora_a and any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_a)


def test_published_weights_are_a_fraction_in_expert_and_lora_modes():
    sizes = {}
    for mode in ("expert", "lora", "all"):
        policy = make_policy("smolvla", train=mode)
        sizes[mode] = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    total = sum(p.numel() for p in make_policy("smolvla").parameters())
    assert sizes["expert"] < sizes["lora"] < sizes["all"] < total


def test_unknown_lora_target_is_a_clear_error():
    with pytest.raises(ConfigError, match="not linear layers"):
        make_policy("smolvla", train="lora", lora={"target_modules": ["qkv"]})

"""Tiny random SmolVLA / pi0 configs (width 32-64, a few layers) built in the tests, an rgb
ObsSpec and observation batches."""

from __future__ import annotations

from typing import Any

import torch

from rl_post.envs.spec import ObsSpec
from rl_post.models import build_policy

STATE_DIM, ACTION_DIM, IMAGE = 9, 4, 24
SPEC = ObsSpec(
    state_dim=STATE_DIM,
    action_dim=ACTION_DIM,
    cameras=("base_camera", "hand_camera"),
    image_size=(IMAGE, IMAGE),
    action_low=(-1.0, -1.0, -0.5, 0.0),
    action_high=(1.0, 1.0, 0.5, 2.0),
)
INSTRUCTIONS = ["pick up the red cube", "push it"]

TINY_SMOLVLM = {
    "text_config": {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "vocab_size": 300,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
    },
    "vision_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "patch_size": 8,
        "image_size": 32,
    },
    "scale_factor": 2,
}

TINY_GEMMA = {
    "gemma_tiny_vlm": {
        "width": 64,
        "depth": 3,
        "mlp_dim": 128,
        "num_heads": 4,
        "num_kv_heads": 1,
        "head_dim": 16,
    },
    "gemma_tiny_expert": {
        "width": 32,
        "depth": 3,
        "mlp_dim": 64,
        "num_heads": 4,
        "num_kv_heads": 1,
        "head_dim": 16,
    },
}
TINY_SIGLIP = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "patch_size": 8,
}


def tiny_config(kind: str, **overrides: Any) -> dict[str, Any]:
    common: dict[str, Any] = {
        "name": f"{kind}_test",
        "kind": kind,
        "action_horizon": 5,
        "execute_steps": 3,
        "num_denoise_steps": 3,
        "image_size": [32, 32],
        "tokenizer_max_length": 12,
        "noise_head_hidden": 16,
        "value_hidden": 16,
    }
    if kind == "smolvla":
        common.update(
            vlm=TINY_SMOLVLM,
            num_vlm_layers=4,
            self_attn_every_n_layers=2,
            expert_width_multiplier=0.5,
        )
    else:
        common.update(
            paligemma_variant="gemma_tiny_vlm",
            action_expert_variant="gemma_tiny_expert",
            gemma_variants=TINY_GEMMA,
            vision=TINY_SIGLIP,
            vocab_size=300,
        )
    common.update(overrides)
    return common


def make_policy(kind: str, seed: int = 0, spec: ObsSpec = SPEC, **overrides: Any):
    torch.manual_seed(seed)
    return build_policy(tiny_config(kind, **overrides), spec)


def make_obs(n: int, seed: int = 0, spec: ObsSpec = SPEC) -> dict[str, object]:
    gen = torch.Generator().manual_seed(seed)
    h, w = spec.image_size
    return {
        "state": torch.randn(n, spec.state_dim, generator=gen),
        "rgb": torch.randint(
            0, 256, (n, len(spec.cameras), h, w, 3), generator=gen, dtype=torch.uint8
        ),
        "instruction": [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(n)],
    }

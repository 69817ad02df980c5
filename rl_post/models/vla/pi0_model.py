"""pi0's network on transformers' PaliGemma and Gemma classes, in LeRobot 0.4.4's module layout.

`PI0Model` has the submodules and parameter names of LeRobot's `PI0Pytorch`
(`paligemma_with_expert.paligemma` a PaliGemmaForConditionalGeneration built from the
`paligemma_variant` shape, `paligemma_with_expert.gemma_expert` a GemmaForCausalLM of the
`action_expert_variant` shape without token embeddings; `state_proj`, `action_in_proj`,
`action_out_proj`, `action_time_mlp_in/out`), so its state_dict under `model.` is LeRobot's
model.safetensors.

Attention, from LeRobot's modeling_pi0.py (compute_layer_complete, embed_prefix/embed_suffix):
every layer is MERGED: the VLM's and the expert's queries/keys/values (each from its own
projections, same heads and head_dim) are concatenated along the sequence and attend in one
softmax under the block mask, with Gemma's rotary embedding and scaling; each model then applies
its own o_proj / MLP to its part.
  prefix = [image tokens per camera (PaliGemma's get_image_features), language tokens x sqrt(d)],
  bidirectional; suffix = [state token, H action tokens]: the state token attends to the prefix
  and itself, action tokens to everything (bidirectional among themselves).
Since prefix tokens never attend to the suffix, the merged pass equals one VLM pass over the
prefix (whose keys/values are cached) followed by expert passes that attend to
[cached prefix, own] keys/values; that is how act() runs the K denoising steps.

LeRobot's own pi0 calls a patched transformers (adaptive RMSNorm `cond=`); with pi0 (not pi0.5)
the condition is None and the norms/gated residuals reduce to stock Gemma's, which is what runs
here. Like compute_layer_complete, no embedding normalizer is applied to inputs_embeds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rl_post.models.vla.config import VLAModelConfig
from rl_post.models.vla.ops import gemma_attention, make_att_2d_masks, sinusoidal_time_embedding
from rl_post.models.vla.prefix import PrefixCache

# LeRobot fixes these for PaliGemma's SigLIP tower (PaliGemmaWithExpertModel.__init__)
SIGLIP_INTERMEDIATE = 4304
PROJECTOR_ACT = "gelu_fast"
GEMMA_ACT = "gelu_pytorch_tanh"


def _gemma_text_config(shape: dict[str, int], vocab: int) -> dict:
    return {
        "hidden_size": shape["width"],
        "intermediate_size": shape["mlp_dim"],
        "num_attention_heads": shape["num_heads"],
        "head_dim": shape["head_dim"],
        "num_hidden_layers": shape["depth"],
        "num_key_value_heads": shape["num_kv_heads"],
        "hidden_activation": GEMMA_ACT,
        "vocab_size": vocab,
    }


class PaliGemmaWithExpert(nn.Module):
    def __init__(self, cfg: VLAModelConfig) -> None:
        super().__init__()
        from transformers import GemmaForCausalLM, PaliGemmaForConditionalGeneration
        from transformers.models.auto import CONFIG_MAPPING

        vlm_shape = cfg.gemma(cfg.paligemma_variant)
        expert_shape = cfg.gemma(cfg.action_expert_variant)
        vocab = cfg.vocab_size
        config = CONFIG_MAPPING["paligemma"]()
        config._vocab_size = vocab  # noqa: SLF001 - as LeRobot sets it
        config.image_token_index = vocab
        for key, value in _gemma_text_config(vlm_shape, vocab).items():
            setattr(config.text_config, key, value)
        vision = config.vision_config
        vision.image_size = cfg.image_size[0]
        vision.intermediate_size = SIGLIP_INTERMEDIATE
        vision.projection_dim = vlm_shape["width"]
        vision.projector_hidden_act = PROJECTOR_ACT
        for key, value in cfg.vision.items():
            setattr(vision, key, value)
        expert_config = CONFIG_MAPPING["gemma"](**_gemma_text_config(expert_shape, vocab))
        self.paligemma = PaliGemmaForConditionalGeneration(config=config)
        self.gemma_expert = GemmaForCausalLM(config=expert_config)
        self.gemma_expert.model.embed_tokens = None

    @property
    def language_model(self) -> nn.Module:
        return self.paligemma.model.language_model

    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.paligemma.model.get_image_features(image)

    def embed_language_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.language_model.embed_tokens(tokens)

    def _qkv(
        self, layer: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from transformers.models.gemma.modeling_gemma import apply_rotary_pos_emb

        h = layer.input_layernorm(x)
        shape = (*h.shape[:-1], -1, layer.self_attn.head_dim)
        q = layer.self_attn.q_proj(h).view(shape).transpose(1, 2)
        k = layer.self_attn.k_proj(h).view(shape).transpose(1, 2)
        v = layer.self_attn.v_proj(h).view(shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1)
        return q, k, v

    @staticmethod
    def _finish(layer: nn.Module, x: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        x = x + layer.self_attn.o_proj(attn_out)
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def prefix_forward(self, embs: torch.Tensor, pad: torch.Tensor, att: torch.Tensor):
        mask = make_att_2d_masks(pad, att)
        positions = torch.cumsum(pad.long(), dim=1) - 1
        lm = self.language_model
        cos, sin = lm.rotary_emb(embs, positions)
        keys, values = [], []
        x = embs
        for layer in lm.layers:
            q, k, v = self._qkv(layer, x, cos, sin)
            keys.append(k)
            values.append(v)
            x = self._finish(layer, x, gemma_attention(mask, q, k, v, layer.self_attn.scaling))
        return PrefixCache(keys, values, pad, lm.norm(x))

    def suffix_forward(self, suffix: torch.Tensor, att: torch.Tensor, cache: PrefixCache):
        """Expert over [state, actions] [B, S, w] with suffix block mask att [B, S]."""
        b, s = suffix.shape[:2]
        pad = cache.pad
        suffix_pad = torch.ones(b, s, dtype=torch.bool, device=suffix.device)
        own = make_att_2d_masks(suffix_pad, att)
        mask = torch.cat([pad[:, None, :].expand(b, s, pad.shape[1]), own], dim=2)
        positions = pad.long().sum(dim=-1, keepdim=True) + torch.cumsum(suffix_pad.long(), 1) - 1
        # the merged layers rotate every token with the VLM's rotary embedding
        cos, sin = self.language_model.rotary_emb(suffix, positions)
        x = suffix
        vlm_layers = self.language_model.layers
        for i, layer in enumerate(self.gemma_expert.model.layers):
            q, k, v = self._qkv(layer, x, cos, sin)
            keys = torch.cat([cache.keys[i], k], dim=2)
            values = torch.cat([cache.values[i], v], dim=2)
            out = gemma_attention(mask, q, keys, values, vlm_layers[i].self_attn.scaling)
            x = self._finish(layer, x, out)
        return self.gemma_expert.model.norm(x)


class PI0Model(nn.Module):
    """LeRobot's PI0Pytorch (parameter for parameter); see the module docstring."""

    def __init__(self, cfg: VLAModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.paligemma_with_expert = PaliGemmaWithExpert(cfg)
        width = cfg.gemma(cfg.action_expert_variant)["width"]
        self.action_in_proj = nn.Linear(cfg.max_action_dim, width)
        self.action_out_proj = nn.Linear(width, cfg.max_action_dim)
        self.state_proj = nn.Linear(cfg.max_state_dim, width)
        self.action_time_mlp_in = nn.Linear(2 * width, width)
        self.action_time_mlp_out = nn.Linear(width, width)

    @property
    def expert_width(self) -> int:
        return self.action_in_proj.out_features

    @property
    def prefix_width(self) -> int:
        return self.paligemma_with_expert.paligemma.config.text_config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.paligemma_with_expert.paligemma.config.text_config.vocab_size

    def embed_prefix(
        self,
        images: list[torch.Tensor],
        image_masks: list[torch.Tensor],
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        net = self.paligemma_with_expert
        embs, pads = [], []
        for img, img_mask in zip(images, image_masks, strict=True):
            emb = net.embed_image(img)
            embs.append(emb)
            pads.append(img_mask[:, None].expand(*emb.shape[:2]))
        lang = net.embed_language_tokens(tokens)
        embs.append(lang * math.sqrt(lang.shape[-1]))
        pads.append(token_mask)
        pad = torch.cat(pads, dim=1)
        return torch.cat(embs, dim=1), pad, torch.zeros_like(pad)

    def encode_prefix(self, images, image_masks, tokens, token_mask, state) -> PrefixCache:
        embs, pad, att = self.embed_prefix(images, image_masks, tokens, token_mask)
        cache = self.paligemma_with_expert.prefix_forward(embs, pad, att)
        cache.state = state
        return cache

    def embed_suffix(
        self, state: torch.Tensor, x_t: torch.Tensor, time: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        state_emb = self.state_proj(state.float())[:, None, :]
        time_emb = sinusoidal_time_embedding(
            time, self.expert_width, self.cfg.min_period, self.cfg.max_period
        ).to(time.dtype)
        action_emb = self.action_in_proj(x_t)
        mixed = torch.cat([action_emb, time_emb[:, None, :].expand_as(action_emb)], dim=2)
        action_time = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(mixed)))
        embs = torch.cat([state_emb, action_time.to(state_emb.dtype)], dim=1)
        b, h = x_t.shape[:2]
        att = torch.zeros(b, 1 + h, dtype=torch.long, device=x_t.device)
        att[:, :2] = 1  # [1] for the state token, then [1, 0, ..., 0] for the action tokens
        return embs, att

    def expert_hidden(
        self, x_t: torch.Tensor, time: torch.Tensor, cache: PrefixCache
    ) -> torch.Tensor:
        """x_t [B, H, 32], t [B] -> the expert's normed output at the action tokens [B, H, w]."""
        assert cache.state is not None
        embs, att = self.embed_suffix(cache.state, x_t, time)
        hidden = self.paligemma_with_expert.suffix_forward(embs, att, cache)
        return hidden[:, -x_t.shape[1] :]

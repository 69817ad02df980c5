"""SmolVLA's network on transformers' SmolVLM and Llama classes, in LeRobot 0.4.4's module layout.

`SmolVLAModel` has exactly the submodules and parameter names of LeRobot's `VLAFlowMatching`
(`vlm_with_expert.vlm` is a SmolVLMForConditionalGeneration cut to `num_vlm_layers` text layers,
`vlm_with_expert.lm_expert` a LlamaModel `expert_width_multiplier` as wide without token
embeddings, whose cross-attention layers read the VLM's keys/values through their own k/v
projections; `state_proj`, `action_in_proj`, `action_out_proj`, `action_time_mlp_in/out`), so its
state_dict under the prefix `model.` is LeRobot's model.safetensors.

Attention, from LeRobot's smolvlm_with_expert.py:
  prefix = [image tokens (x sqrt(d)) per camera, language tokens (x sqrt(d)), state token];
  images+language attend to each other, the state token to all of them (block-causal mask).
  suffix = H action tokens (action_in_proj(x_t) mixed with the time embedding), causal among
  themselves. Every `self_attn_every_n_layers`-th layer the expert attends jointly to the cached
  prefix keys/values and its own; the other (cross-attention) layers project the VLM's cached,
  rotated keys and its values with the expert's k/v projections and attend to the prefix only.
The prefix is computed once per observation (the reference's KV cache); every denoising step
runs only the expert over it.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from rl_post.config import ConfigError
from rl_post.models.vla.config import VLAModelConfig
from rl_post.models.vla.ops import (
    make_att_2d_masks,
    sinusoidal_time_embedding,
    smolvla_attention,
    smolvla_rope,
)
from rl_post.models.vla.prefix import PrefixCache


def expert_intermediate_size(hidden: int, ffn_multiplier: int = 4, multiple_of: int = 256) -> int:
    """LeRobot's get_intermediate_size for the expert's MLP."""
    hidden = int(2 * hidden / 3)
    hidden = int(ffn_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SmolVLMWithExpert(nn.Module):
    def __init__(self, cfg: VLAModelConfig) -> None:
        super().__init__()
        from transformers import AutoModel, SmolVLMConfig, SmolVLMForConditionalGeneration

        config = SmolVLMConfig(**copy.deepcopy(cfg.vlm))
        self.vlm = SmolVLMForConditionalGeneration(config)
        text = self.vlm.model.text_model
        if cfg.num_vlm_layers > 0:
            text.layers = text.layers[: cfg.num_vlm_layers]
        self.num_vlm_layers = len(text.layers)
        expert_cfg = copy.deepcopy(config.text_config)
        width = int(expert_cfg.hidden_size * cfg.expert_width_multiplier)
        expert_cfg.hidden_size = width
        expert_cfg.intermediate_size = expert_intermediate_size(width)
        expert_cfg.num_hidden_layers = self.num_vlm_layers
        if cfg.num_expert_layers > 0:
            if self.num_vlm_layers % cfg.num_expert_layers:
                raise ConfigError(
                    f"model.num_vlm_layers={self.num_vlm_layers} must be a multiple of "
                    f"model.num_expert_layers={cfg.num_expert_layers}"
                )
            expert_cfg.num_hidden_layers = cfg.num_expert_layers
        self.lm_expert = AutoModel.from_config(expert_cfg)
        self.num_expert_layers = len(self.lm_expert.layers)
        self.self_attn_every_n_layers = cfg.self_attn_every_n_layers
        self.cross = "cross" in cfg.attention_mode
        text_cfg = config.text_config
        vlm_kv = text_cfg.num_key_value_heads * text_cfg.head_dim
        expert_kv = expert_cfg.num_key_value_heads * expert_cfg.head_dim
        if self.cross:
            for i, layer in enumerate(self.lm_expert.layers):
                if self._is_self_attn(i):
                    continue
                bias = expert_cfg.attention_bias
                layer.self_attn.k_proj = nn.Linear(vlm_kv, expert_kv, bias=bias)
                layer.self_attn.v_proj = nn.Linear(vlm_kv, expert_kv, bias=bias)
        self.lm_expert.embed_tokens = None
        self.expert_hidden_size = width
        self.head_dim = text_cfg.head_dim

    def _is_self_attn(self, layer_idx: int) -> bool:
        every = self.self_attn_every_n_layers
        return not self.cross or (every > 0 and layer_idx % every == 0)

    def expert_layer(self, vlm_layer_idx: int) -> nn.Module | None:
        """The expert layer paired with VLM layer i (LeRobot's get_model_layers)."""
        multiple_of = self.num_vlm_layers // self.num_expert_layers
        if multiple_of > 0 and vlm_layer_idx > 0 and vlm_layer_idx % multiple_of != 0:
            return None
        index = vlm_layer_idx // multiple_of if multiple_of > 0 else vlm_layer_idx
        return self.lm_expert.layers[index]

    # ----- embeddings ---------------------------------------------------------------------------

    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        model = self.vlm.model
        hidden = model.vision_model(pixel_values=image, patch_attention_mask=None)
        return model.connector(hidden.last_hidden_state)

    def embed_language_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.vlm.model.text_model.get_input_embeddings()(tokens)

    # ----- the two passes -----------------------------------------------------------------------

    def prefix_forward(
        self, embs: torch.Tensor, pad: torch.Tensor, att: torch.Tensor
    ) -> PrefixCache:
        mask = make_att_2d_masks(pad, att)
        positions = torch.cumsum(pad.long(), dim=1) - 1
        text = self.vlm.model.text_model
        keys, values = [], []
        x = embs
        for layer in text.layers:
            h = layer.input_layernorm(x)
            shape = (*h.shape[:-1], -1, layer.self_attn.head_dim)
            q = smolvla_rope(layer.self_attn.q_proj(h).view(shape), positions)
            k = smolvla_rope(layer.self_attn.k_proj(h).view(shape), positions)
            v = layer.self_attn.v_proj(h).view(shape)
            keys.append(k)
            values.append(v)
            x = x + layer.self_attn.o_proj(smolvla_attention(mask, q, k, v))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return PrefixCache(keys, values, pad, text.norm(x))

    def suffix_forward(self, suffix: torch.Tensor, cache: PrefixCache) -> torch.Tensor:
        """Expert over the action tokens [B, S, w] given the prefix cache -> normed [B, S, w]."""
        b, s = suffix.shape[:2]
        pad = cache.pad
        prefix_len = pad.shape[1]
        suffix_pad = torch.ones(b, s, dtype=torch.bool, device=suffix.device)
        # suffix tokens are causal among themselves (att mask 1 per action token)
        suffix_mask = make_att_2d_masks(suffix_pad, torch.ones_like(suffix_pad))
        full_mask = torch.cat([pad[:, None, :].expand(b, s, prefix_len), suffix_mask], dim=2)
        positions = pad.long().sum(dim=-1, keepdim=True) + torch.cumsum(suffix_pad.long(), 1) - 1
        cross_positions = positions - positions.min(dim=1, keepdim=True).values
        x = suffix
        for i in range(self.num_vlm_layers):
            layer = self.expert_layer(i)
            if layer is None:
                continue
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            shape = (b, s, -1, attn.head_dim)
            if self._is_self_attn(i):
                q = smolvla_rope(attn.q_proj(h).view(shape), positions)
                k = smolvla_rope(attn.k_proj(h).view(shape), positions)
                v = attn.v_proj(h).view(shape)
                keys = torch.cat([cache.keys[i], k], dim=1)
                values = torch.cat([cache.values[i], v], dim=1)
                out = smolvla_attention(full_mask, q, keys, values)
            else:
                q = smolvla_rope(attn.q_proj(h).view(shape), cross_positions)
                ck, cv = cache.keys[i], cache.values[i]
                keys = attn.k_proj(ck.flatten(2)).view(*ck.shape[:2], -1, attn.head_dim)
                values = attn.v_proj(cv.flatten(2)).view(*cv.shape[:2], -1, attn.head_dim)
                out = smolvla_attention(full_mask[:, :, :prefix_len], q, keys, values)
            x = x + attn.o_proj(out)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.lm_expert.norm(x)


class SmolVLAModel(nn.Module):
    """LeRobot's VLAFlowMatching (parameter for parameter); see the module docstring."""

    def __init__(self, cfg: VLAModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vlm_with_expert = SmolVLMWithExpert(cfg)
        vlm_width = self.vlm_with_expert.vlm.config.text_config.hidden_size
        width = self.vlm_with_expert.expert_hidden_size
        self.state_proj = nn.Linear(cfg.max_state_dim, vlm_width)
        self.action_in_proj = nn.Linear(cfg.max_action_dim, width)
        self.action_out_proj = nn.Linear(width, cfg.max_action_dim)
        self.action_time_mlp_in = nn.Linear(2 * width, width)
        self.action_time_mlp_out = nn.Linear(width, width)

    @property
    def expert_width(self) -> int:
        return self.vlm_with_expert.expert_hidden_size

    @property
    def prefix_width(self) -> int:
        return self.vlm_with_expert.vlm.config.text_config.hidden_size

    def embed_prefix(
        self,
        images: list[torch.Tensor],
        image_masks: list[torch.Tensor],
        tokens: torch.Tensor,
        token_mask: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> embeddings [B, P, d], pad mask [B, P], block mask [B, P] (LeRobot's embed_prefix)."""
        vlm = self.vlm_with_expert
        embs, pads, att = [], [], []
        for img, img_mask in zip(images, image_masks, strict=True):
            emb = vlm.embed_image(img)
            emb = emb * torch.tensor(emb.shape[-1] ** 0.5, dtype=emb.dtype, device=emb.device)
            b, n = emb.shape[:2]
            embs.append(emb)
            pads.append(img_mask[:, None].expand(b, n))
            att += [0] * n
        lang = vlm.embed_language_tokens(tokens)
        embs.append(lang * math.sqrt(lang.shape[-1]))
        pads.append(token_mask)
        att += [0] * lang.shape[1]
        state_emb = self.state_proj(state)[:, None, :]
        embs.append(state_emb)
        b = state_emb.shape[0]
        pads.append(torch.ones(b, 1, dtype=torch.bool, device=state_emb.device))
        att += [1]
        att_mask = torch.tensor(att, dtype=torch.bool, device=state_emb.device)[None].expand(b, -1)
        return torch.cat(embs, dim=1), torch.cat(pads, dim=1), att_mask

    def encode_prefix(self, *inputs: torch.Tensor | list[torch.Tensor]) -> PrefixCache:
        embs, pad, att = self.embed_prefix(*inputs)  # type: ignore[arg-type]
        return self.vlm_with_expert.prefix_forward(embs, pad, att)

    def embed_suffix(self, x_t: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        action_emb = self.action_in_proj(x_t)
        time_emb = sinusoidal_time_embedding(
            time, self.expert_width, self.cfg.min_period, self.cfg.max_period
        ).to(action_emb.dtype)
        mixed = torch.cat([action_emb, time_emb[:, None, :].expand_as(action_emb)], dim=2)
        return self.action_time_mlp_out(F.silu(self.action_time_mlp_in(mixed)))

    def expert_hidden(
        self, x_t: torch.Tensor, time: torch.Tensor, cache: PrefixCache
    ) -> torch.Tensor:
        """x_t [B, H, 32], t [B] -> the expert's normed output at the action tokens [B, H, w]
        (LeRobot's denoise_step up to action_out_proj, which the policy applies in float32)."""
        hidden = self.vlm_with_expert.suffix_forward(self.embed_suffix(x_t, time), cache)
        return hidden[:, -x_t.shape[1] :]

"""Test-only re-statements of LeRobot 0.4.4's TRAINING forward passes (the whole prefix + suffix
sequence in one pass, no KV cache), written from its equations:

  SmolVLA: VLAFlowMatching.forward -> SmolVLMWithExpertModel.forward with inputs_embeds=[prefix,
  suffix], fill_kv_cache=False: self-attention layers concatenate both models' q/k/v and attend
  under the joint block mask; cross-attention layers run the VLM's self-attention over the prefix
  and the expert's queries over k/v projections of the VLM's rotated keys / values.
  pi0: PI0Pytorch.forward -> compute_layer_complete per layer on [prefix, suffix].

rl_post's policies run the same networks differently (one VLM pass, cached keys/values, expert
steps), so agreement checks both the caching and the equations. These functions use the
policies' modules and weights but none of their forward code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rl_post.models.vla.ops import make_att_2d_masks


def _rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """SmolVLA's apply_rope, restated (x [B, L, H, D])."""
    d_half = x.shape[-1] // 2
    freq = (2.0 / x.shape[-1]) * torch.arange(d_half, dtype=torch.float32)
    radians = positions[..., None].float() / (10_000**freq)[None, None, :]
    radians = radians[..., None, :]
    x1, x2 = x.float().split(d_half, dim=-1)
    out = torch.empty_like(x.float())
    out[..., :d_half] = x1 * torch.cos(radians) - x2 * torch.sin(radians)
    out[..., d_half:] = x2 * torch.cos(radians) + x1 * torch.sin(radians)
    return out


def _eager(mask, q, k, v, heads, kv_heads, head_dim):
    """SmolVLMWithExpertModel.eager_attention_forward, restated."""
    b, lk = k.shape[:2]
    groups = heads // kv_heads
    k = (
        k[:, :, :, None, :]
        .expand(b, lk, kv_heads, groups, head_dim)
        .reshape(b, lk, heads, head_dim)
    )
    v = (
        v[:, :, :, None, :]
        .expand(b, lk, kv_heads, groups, head_dim)
        .reshape(b, lk, heads, head_dim)
    )
    w = torch.matmul(q.float().transpose(1, 2), k.float().transpose(1, 2).transpose(2, 3))
    w = w * head_dim**-0.5
    w = torch.where(mask[:, None, :, :], w, torch.finfo(torch.float32).min)
    p = F.softmax(w, dim=-1)
    out = torch.matmul(p, v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
    return out.reshape(b, -1, heads * head_dim)


def smolvla_velocity(policy, obs, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v_t [B, H, 32] of LeRobot's SmolVLA training forward for noisy actions x_t at times t."""
    net = policy.model
    vwe = net.vlm_with_expert
    device = x_t.device
    # inputs exactly as the policy prepares them (images, normalized padded state, tokens)
    from rl_post.models.vla.inputs import images_uint8, instructions, select_state
    from rl_post.models.vla.ops import pad_last_dim

    state = select_state(obs, policy.layout, device)
    n = state.shape[0]
    state = pad_last_dim(policy.normalizer.normalize_state(state), policy.config.max_state_dim)
    pixels = policy.prepare_images(images_uint8(obs, policy.layout, device))
    tokens, token_mask = policy.instruction_encoder(instructions(obs, policy.layout, n), device)
    # embed_prefix
    embs, pads, att = [], [], []
    for img in pixels:
        e = vwe.vlm.model.connector(vwe.vlm.model.vision_model(pixel_values=img).last_hidden_state)
        e = e * math.sqrt(e.shape[-1])
        embs.append(e)
        pads.append(torch.ones(n, e.shape[1], dtype=torch.bool))
        att += [0] * e.shape[1]
    lang = vwe.vlm.model.text_model.embed_tokens(tokens)
    embs.append(lang * math.sqrt(lang.shape[-1]))
    pads.append(token_mask)
    att += [0] * lang.shape[1]
    embs.append(net.state_proj(state)[:, None])
    pads.append(torch.ones(n, 1, dtype=torch.bool))
    att += [1]
    prefix = torch.cat(embs, 1)
    # embed_suffix
    width = vwe.expert_hidden_size
    a = net.action_in_proj(x_t)
    fraction = torch.linspace(0.0, 1.0, width // 2, dtype=torch.float64)
    period = (
        policy.config.min_period * (policy.config.max_period / policy.config.min_period) ** fraction
    )
    sin_in = (1.0 / period * 2 * math.pi)[None, :] * t[:, None]
    te = torch.cat([torch.sin(sin_in), torch.cos(sin_in)], 1).to(a.dtype)
    suffix = net.action_time_mlp_out(
        F.silu(net.action_time_mlp_in(torch.cat([a, te[:, None].expand_as(a)], 2)))
    )
    h = x_t.shape[1]
    pad_masks = torch.cat([*pads, torch.ones(n, h, dtype=torch.bool)], 1)
    att_masks = torch.tensor(att + [1] * h)[None].expand(n, -1)
    mask = make_att_2d_masks(pad_masks, att_masks)
    pos = torch.cumsum(pad_masks.long(), 1) - 1
    text_cfg = vwe.vlm.config.text_config
    heads, kv, hd = text_cfg.num_attention_heads, text_cfg.num_key_value_heads, text_cfg.head_dim
    p_len = prefix.shape[1]
    xs = [prefix, suffix]
    models = [vwe.vlm.model.text_model, vwe.lm_expert]
    multiple = vwe.num_vlm_layers // vwe.num_expert_layers
    for i in range(vwe.num_vlm_layers):
        expert_layer = (
            None
            if multiple > 0 and i > 0 and i % multiple != 0
            else vwe.lm_expert.layers[i // multiple if multiple > 0 else i]
        )
        layers = [models[0].layers[i], expert_layer]
        every = vwe.self_attn_every_n_layers
        if not vwe.cross or (every > 0 and i % every == 0):  # forward_attn_layer
            qs, ks, vs = [], [], []
            for x, layer in zip(xs, layers, strict=True):
                if layer is None:
                    continue
                y = layer.input_layernorm(x)
                shape = (*y.shape[:-1], -1, hd)
                qs.append(layer.self_attn.q_proj(y).view(shape))
                ks.append(layer.self_attn.k_proj(y).view(shape))
                vs.append(layer.self_attn.v_proj(y).view(shape))
            q, k, v = torch.cat(qs, 1), torch.cat(ks, 1), torch.cat(vs, 1)
            length = q.shape[1]
            out = _eager(
                mask[:, :length, :length],
                _rope(q, pos[:, :length]),
                _rope(k, pos[:, :length]),
                v,
                heads,
                kv,
                hd,
            )
            outs, start = [], 0
            for x in xs:
                outs.append(out[:, start : start + x.shape[1]])
                start += x.shape[1]
        else:  # forward_cross_attn_layer
            layer = layers[0]
            y = layer.input_layernorm(xs[0])
            shape = (*y.shape[:-1], -1, hd)
            q = _rope(layer.self_attn.q_proj(y).view(shape), pos[:, :p_len])
            k = _rope(layer.self_attn.k_proj(y).view(shape), pos[:, :p_len])
            v = layer.self_attn.v_proj(y).view(shape)
            outs = [_eager(mask[:, :p_len, :p_len], q, k, v, heads, kv, hd)]
            el = layers[1]
            if el is None:
                outs.append(None)
            else:
                ye = el.input_layernorm(xs[1])
                eq = el.self_attn.q_proj(ye).view(*ye.shape[:-1], -1, hd)
                ek = el.self_attn.k_proj(k.view(*k.shape[:2], -1)).view(*k.shape[:2], -1, hd)
                ev = el.self_attn.v_proj(v.view(*v.shape[:2], -1)).view(*v.shape[:2], -1, hd)
                epos = pos[:, p_len:]
                epos = epos - epos.min(dim=1, keepdim=True).values
                outs.append(_eager(mask[:, -h:, :p_len], _rope(eq, epos), ek, ev, heads, kv, hd))
        new = []
        for x, layer, out in zip(xs, layers, outs, strict=True):
            if layer is None:
                new.append(x)
                continue
            y = layer.self_attn.o_proj(out) + x
            new.append(layer.mlp(layer.post_attention_layernorm(y)) + y)
        xs = new
    suffix_out = vwe.lm_expert.norm(xs[1])[:, -h:]
    return net.action_out_proj(suffix_out.float())


def pi0_velocity(policy, obs, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v_t [B, H, 32] of LeRobot's pi0 training forward (compute_layer_complete per layer)."""
    from transformers.models.gemma import modeling_gemma

    from rl_post.models.vla.inputs import images_uint8, instructions, select_state
    from rl_post.models.vla.ops import OPENPI_ATTENTION_MASK_VALUE, pad_last_dim

    net = policy.model
    pwe = net.paligemma_with_expert
    device = x_t.device
    state = select_state(obs, policy.layout, device)
    n = state.shape[0]
    state = pad_last_dim(policy.normalizer.normalize_state(state), policy.config.max_state_dim)
    pixels = policy.prepare_images(images_uint8(obs, policy.layout, device))
    tokens, token_mask = policy.instruction_encoder(instructions(obs, policy.layout, n), device)
    embs, pads = [], []
    for img in pixels:
        e = pwe.paligemma.model.get_image_features(img)
        embs.append(e)
        pads.append(torch.ones(n, e.shape[1], dtype=torch.bool))
    lang = pwe.paligemma.model.language_model.embed_tokens(tokens)
    embs.append(lang * math.sqrt(lang.shape[-1]))
    pads.append(token_mask)
    prefix = torch.cat(embs, 1)
    att = [0] * prefix.shape[1]
    width = net.action_in_proj.out_features
    fraction = torch.linspace(0.0, 1.0, width // 2, dtype=torch.float64)
    period = (
        policy.config.min_period * (policy.config.max_period / policy.config.min_period) ** fraction
    )
    sin_in = (1.0 / period * 2 * math.pi)[None, :] * t[:, None]
    te = torch.cat([torch.sin(sin_in), torch.cos(sin_in)], 1).to(t.dtype)
    a = net.action_in_proj(x_t)
    at = net.action_time_mlp_out(
        F.silu(net.action_time_mlp_in(torch.cat([a, te[:, None].expand_as(a)], 2)))
    )
    h = x_t.shape[1]
    suffix = torch.cat([net.state_proj(state)[:, None], at], 1)
    att += [1] + [1] + [0] * (h - 1)
    pad_masks = torch.cat([*pads, torch.ones(n, 1 + h, dtype=torch.bool)], 1)
    att_masks = torch.tensor(att)[None].expand(n, -1)
    mask2d = make_att_2d_masks(pad_masks, att_masks)
    mask4d = torch.where(mask2d[:, None], 0.0, OPENPI_ATTENTION_MASK_VALUE)
    pos = torch.cumsum(pad_masks.long(), 1) - 1
    lm = pwe.paligemma.model.language_model
    models = [lm, pwe.gemma_expert.model]
    xs = [prefix, suffix]
    for i in range(len(lm.layers)):
        qs, ks, vs = [], [], []
        for x, m in zip(xs, models, strict=True):
            layer = m.layers[i]
            y = layer.input_layernorm(x)
            shape = (*y.shape[:-1], -1, layer.self_attn.head_dim)
            qs.append(layer.self_attn.q_proj(y).view(shape).transpose(1, 2))
            ks.append(layer.self_attn.k_proj(y).view(shape).transpose(1, 2))
            vs.append(layer.self_attn.v_proj(y).view(shape).transpose(1, 2))
        q, k, v = torch.cat(qs, 2), torch.cat(ks, 2), torch.cat(vs, 2)
        dummy = torch.zeros(q.shape[0], q.shape[2], q.shape[-1])
        cos, sin = lm.rotary_emb(dummy, pos)
        q, k = modeling_gemma.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1)
        attn = lm.layers[i].self_attn
        out, _ = modeling_gemma.eager_attention_forward(attn, q, k, v, mask4d, attn.scaling)
        out = out.reshape(n, -1, attn.config.num_attention_heads * attn.head_dim)
        new, start = [], 0
        for x, m in zip(xs, models, strict=True):
            layer = m.layers[i]
            y = layer.self_attn.o_proj(out[:, start : start + x.shape[1]]) + x
            start += x.shape[1]
            new.append(layer.mlp(layer.post_attention_layernorm(y)) + y)
        xs = new
    suffix_out = pwe.gemma_expert.model.norm(xs[1])[:, -h:]
    return net.action_out_proj(suffix_out.float())

"""What RL (and SFT) trains in a VLA policy (model.train), and LoRA merging for LeRobot saves.

  expert  the VLM is frozen; the action expert, the state/action/time projections, the noise head
          and the value head train (LeRobot's train_expert_only)
  lora    LoRA adapters (peft) on the VLM language model's linear layers (model.lora) train with
          the expert; the VLM's own weights stay frozen
  all     everything trains, except the vision encoder with model.freeze_vision=true
Parameters no output depends on (the language-model heads) never train. Only trainable tensors
are published to rollout workers (learner.publish=trainable), so `expert` and `lora` sync a
fraction of the weights per update.
"""

from __future__ import annotations

import torch
from torch import nn

from rl_post.config import ConfigError

LORA_ADAPTER = "default"


def apply_training_mode(policy: nn.Module) -> None:
    cfg = policy.config
    policy.requires_grad_(True)
    vlm = policy.vlm_module()
    if cfg.train == "lora":
        add_lora(vlm, cfg)
    elif cfg.train == "expert":
        vlm.requires_grad_(False)
    if cfg.freeze_vision or cfg.train != "all":
        policy.vision_module().requires_grad_(False)
    for param in policy.unused_parameters():
        param.requires_grad_(False)


def add_lora(vlm: nn.Module, cfg) -> None:
    """Wrap the VLM language model's target linear layers in LoRA (B = 0: the function is
    unchanged at start); every non-adapter VLM weight is frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    language = _language_model(vlm)
    names = {n.rsplit(".", 1)[-1] for n, m in language.named_modules() if isinstance(m, nn.Linear)}
    missing = sorted(set(cfg.lora.target_modules) - names)
    if missing:
        raise ConfigError(
            f"model.lora.target_modules {missing} are not linear layers of the VLM's language "
            f"model (it has {sorted(names)})"
        )
    config = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
    )
    inject_adapter_in_model(config, language, adapter_name=LORA_ADAPTER)
    for name, param in vlm.named_parameters():
        param.requires_grad_(".lora_" in name)


def _language_model(vlm: nn.Module) -> nn.Module:
    inner = vlm.model
    return inner.text_model if hasattr(inner, "text_model") else inner.language_model


def merged_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """module.state_dict() with every LoRA layer folded into its base weight (W + B A alpha/r)
    and peft's names undone: the plain layout LeRobot loads."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, torch.Tensor] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, LoraLayer):
            base = sub.get_base_layer()
            delta = sub.get_delta_weight(LORA_ADAPTER) if LORA_ADAPTER in sub.lora_A else 0.0
            merged[f"{name}.weight"] = (base.weight + delta).detach()
    out: dict[str, torch.Tensor] = {}
    for key, value in module.state_dict().items():
        if ".lora_" in key:
            continue
        plain = key.replace(".base_layer.", ".")
        out[plain] = merged.get(plain, value)
    return out


def has_lora(module: nn.Module) -> bool:
    return any(".lora_" in name for name, _ in module.named_parameters())

"""Overrides that shrink flow_tiny/token_tiny/mlp_gaussian further, so tests train in seconds."""

from __future__ import annotations

TINY_MODEL = {
    "d_model": 16,
    "num_heads": 2,
    "backbone_layers": 1,
    "state_hidden": 16,
    "value_hidden": 16,
    "expert_layers": 1,
    "expert_d_model": 16,
    "noise_head_hidden": 16,
    "num_denoise_steps": 2,
    "num_bins": 16,
}
TOKEN_ONLY_KEYS = {"num_bins"}  # 256 bins need far more data than a unit test has
FLOW_ONLY_KEYS = {"expert_layers", "expert_d_model", "noise_head_hidden", "num_denoise_steps"}


def tiny_overrides(kind: str) -> list[str]:
    """Hydra overrides of model.* for `kind` (flow | token | mlp)."""
    if kind == "mlp":
        return ["model.hidden_sizes=[32,32]"]
    skip = TOKEN_ONLY_KEYS if kind == "flow" else FLOW_ONLY_KEYS
    keys = {k: v for k, v in TINY_MODEL.items() if k not in skip}
    return [f"model.{k}={v}" for k, v in keys.items()]

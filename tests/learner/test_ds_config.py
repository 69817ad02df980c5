import pytest

from rl_post.config import ConfigError
from rl_post.learner.ds_config import build_deepspeed_config, optimizer_settings, resolve_precision

from .tiny import algo_config, learner_config


def test_config_carries_batch_sizes_and_leaves_clipping_to_the_optimizer():
    cfg = build_deepspeed_config(
        learner_config(zero_stage=2), precision="fp32", world_size=2, micro_size=3, grad_accum=4
    )
    assert cfg["train_batch_size"] == 24
    # per-group clipping lives in GroupClippedAdamW; DeepSpeed's global clip must stay off
    assert cfg["gradient_clipping"] == 0.0
    assert cfg["zero_optimization"] == {"stage": 2}
    assert "optimizer" not in cfg and cfg["zero_allow_untested_optimizer"] is True
    assert "torch_autocast" not in cfg


def test_optimizer_settings_come_from_algo_and_learner_groups():
    settings = optimizer_settings(
        learner_config(adam_betas=[0.9, 0.95], adam_eps=1e-6),
        algo_config(lr=2e-4, weight_decay=0.01),
        on_gpu=False,
    )
    assert settings == {
        "lr": 2e-4,
        "betas": (0.9, 0.95),
        "eps": 1e-6,
        "weight_decay": 0.01,
        "fused": False,
    }
    assert optimizer_settings(learner_config(), algo_config(), on_gpu=True)["fused"] is True
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        optimizer_settings(learner_config(adam_fused=True), algo_config(), on_gpu=False)


def test_bf16_uses_autocast_with_fp32_master_weights():
    cfg = build_deepspeed_config(
        learner_config(), precision="bf16", world_size=1, micro_size=1, grad_accum=1
    )
    assert cfg["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert "bf16" not in cfg


def test_precision_auto_follows_device_and_rejects_unknown():
    assert resolve_precision("auto", on_gpu=False) == "fp32"
    assert resolve_precision("auto", on_gpu=True) == "bf16"
    with pytest.raises(ConfigError, match="valid choices"):
        resolve_precision("fp16", on_gpu=True)


def test_bad_zero_stage_names_valid_choices():
    with pytest.raises(ConfigError, match="0, 1, 2, 3"):
        build_deepspeed_config(
            learner_config(zero_stage=4), precision="fp32", world_size=1, micro_size=1, grad_accum=1
        )

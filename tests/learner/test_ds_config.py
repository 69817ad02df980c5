import pytest

from rl_post.config import ConfigError
from rl_post.learner.ds_config import build_deepspeed_config, resolve_precision

from .tiny import algo_config, learner_config


def test_config_carries_batch_sizes_clipping_and_optimizer():
    cfg = build_deepspeed_config(
        learner_config(zero_stage=2),
        algo_config(max_grad_norm=0.5, weight_decay=0.01),
        precision="fp32",
        world_size=2,
        micro_size=3,
        grad_accum=4,
    )
    assert cfg["train_batch_size"] == 24
    assert cfg["gradient_clipping"] == 0.5
    assert cfg["zero_optimization"] == {"stage": 2}
    params = cfg["optimizer"]["params"]
    assert cfg["optimizer"]["type"] == "AdamW"
    assert params["torch_adam"] is True and params["weight_decay"] == 0.01
    assert "torch_autocast" not in cfg


def test_bf16_uses_autocast_with_fp32_master_weights():
    cfg = build_deepspeed_config(
        learner_config(), algo_config(), precision="bf16", world_size=1, micro_size=1, grad_accum=1
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
            learner_config(zero_stage=4),
            algo_config(),
            precision="fp32",
            world_size=1,
            micro_size=1,
            grad_accum=1,
        )

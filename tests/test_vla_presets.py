"""The GPU recipes for SmolVLA and pi0 compose and their layouts are consistent (checked on a CPU
machine: the GPU itself is only required when they run)."""

import pytest

from rl_post.algorithms.registry import ALGORITHMS
from rl_post.config import load_config
from rl_post.envs.settings import parse_env_settings
from rl_post.models.config import parse_model_config
from rl_post.runtime.build import plan_layout


@pytest.mark.parametrize(
    ("preset", "kind"), [("smolvla_pickcube_gpu", "smolvla"), ("pi0_pickcube_gpu", "pi0")]
)
def test_gpu_presets_compose(preset, kind):
    cfg = load_config("train", [f"presets={preset}"])
    assert parse_model_config(cfg.model).kind == kind
    settings = parse_env_settings(cfg.env, check_device=False)
    assert settings.wants_rgb and cfg.env.backend == "gpu"
    group = int(cfg.algo.group_size) if ALGORITHMS[str(cfg.algo.name)].uses_groups else 1
    layout = plan_layout(int(cfg.env.num_envs), group, cfg.runtime)
    assert layout.num_workers * layout.stages * layout.envs_per_shard == int(cfg.env.num_envs)
    assert layout.stages == 2 and cfg.runtime.placement.rollout_device == "cuda"
    assert cfg.learner.precision == "bf16" and int(cfg.learner.num_ranks) == 4

import pytest

from rl_post.config import ConfigError, load_config
from rl_post.runtime.build import plan_layout


def runtime(**overrides):
    cfg = load_config("train", [f"runtime.{k}={v}" for k, v in overrides.items()])
    return cfg.runtime


def test_layout_splits_envs_over_workers_and_stages_with_distinct_seed_ranges():
    layout = plan_layout(8, 1, runtime(num_rollout_workers=2, pipeline_stages=2))
    assert (layout.num_workers, layout.stages, layout.envs_per_worker, layout.envs_per_shard) == (
        2,
        2,
        4,
        2,
    )
    offsets = {layout.shard_seed_offset(w, s) for w in range(2) for s in range(2)}
    assert len(offsets) == 4


def test_layout_keeps_groups_whole_by_reducing_stages():
    layout = plan_layout(4, 4, runtime(pipeline_stages=2))
    assert layout.stages == 1 and layout.envs_per_shard == 4


def test_layout_rejects_uneven_split():
    with pytest.raises(ConfigError, match="num_rollout_workers=3"):
        plan_layout(8, 1, runtime(num_rollout_workers=3))


@pytest.mark.parametrize("cluster", ["1node_8gpu", "2node_16gpu"])
def test_cluster_presets_compose_into_a_valid_gpu_layout(cluster):
    cfg = load_config("train", [f"cluster={cluster}"])
    assert cfg.env.backend == "gpu" and cfg.learner.precision == "bf16"
    layout = plan_layout(int(cfg.env.num_envs), 1, cfg.runtime)
    assert layout.envs_per_shard * layout.stages * layout.num_workers == cfg.env.num_envs
    gpus = cfg.runtime.placement
    per_worker = gpus.rollout_worker_num_gpus + layout.stages * gpus.env_worker_num_gpus
    assert per_worker == pytest.approx(1.0)

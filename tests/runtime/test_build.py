import pytest

from rl_post.config import ConfigError, load_config
from rl_post.runtime.build import env_shards_in_process, plan_layout


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


def test_auto_stages_build_two_shards_and_fall_back_to_one_when_groups_do_not_split():
    layout = plan_layout(4, 1, runtime(pipeline_stages="auto"))
    assert (layout.stages, layout.envs_per_shard, layout.schedule) == (2, 2, "auto")
    layout = plan_layout(4, 4, runtime(pipeline_stages="auto"))  # one group of 4: one shard
    assert (layout.stages, layout.schedule) == (1, "lockstep")
    assert plan_layout(4, 1, runtime(pipeline_stages=2)).schedule == "pipelined"
    with pytest.raises(ConfigError, match="runtime.pipeline_stages"):
        plan_layout(4, 1, runtime(pipeline_stages=0))


def test_env_shards_live_in_the_rollout_process_for_cpu_envs_and_in_actors_for_gpu_envs():
    cpu = load_config("train")
    gpu = load_config("train", ["env=pickcube_gpu"])
    assert env_shards_in_process(cpu.runtime, cpu.env)
    assert not env_shards_in_process(gpu.runtime, gpu.env)
    forced = load_config("train", ["runtime.placement.env_shards=actor"])
    assert not env_shards_in_process(forced.runtime, forced.env)
    bad = load_config("train", ["runtime.placement.env_shards=remote"])
    with pytest.raises(ConfigError, match="valid choices: auto, in_process, actor"):
        env_shards_in_process(bad.runtime, bad.env)

"""Two learner ranks as Ray actors (gloo) against one in-process rank on the same batch."""

import pytest
import ray
import ray.cloudpickle
import torch

from rl_post.learner.group import LearnerGroup

from . import tiny
from .tiny import TinyGaussianPolicy, algo_config, learner_config, make_batch


@pytest.fixture(scope="module")
def ray_local():
    # Ray workers cannot import this test package; ship the tiny policy's module by value.
    ray.cloudpickle.register_pickle_by_value(tiny)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.e2e
def test_two_ranks_match_one_rank(ray_local, tmp_path):
    # 23 samples: uneven minibatches and padding, masked rows, 3 micro-batches per rank per step
    batch = make_batch(23)
    algo, learner = algo_config(), learner_config(micro_batch_size=2)

    single = LearnerGroup(TinyGaussianPolicy, algo, learner, num_ranks=1)
    single_stats = single.update(batch)
    expected = single.policy_state()

    group = LearnerGroup(TinyGaussianPolicy, algo, learner, num_ranks=2)
    try:
        stats = group.update(batch)
        state = group.policy_state()
        assert state.keys() == expected.keys()
        for name, tensor in state.items():
            torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-6)
        for key in ("policy_loss", "value_loss", "entropy", "total_loss", "grad_norm"):
            assert stats[key] == pytest.approx(single_stats[key], rel=1e-5, abs=1e-6), key
        assert stats["num_updates"] == single_stats["num_updates"]

        # checkpoint through the group: rank files written and read back by both ranks
        group.save(tmp_path / "ckpt")
        after_save = group.update(batch)
        group.load(tmp_path / "ckpt")
        assert group.update(batch)["total_loss"] == pytest.approx(after_save["total_loss"])
    finally:
        group.shutdown()

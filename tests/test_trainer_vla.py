"""SmolVLA and pi0 (tiny, random) through the real driver: Ray rollout and env workers with
ManiSkill rgb observations, the DeepSpeed learner, LeRobot-layout checkpoints and init_from."""

import pytest
import ray
import torch

from rl_post.envs.factory import obs_spec_for
from rl_post.models import build_policy, load_policy, save_policy
from rl_post.models.vla.lerobot_io import RL_POST_FILE
from rl_post.trainer import Trainer
from tests.trainer_helpers import read_metrics, tiny_config

pytestmark = pytest.mark.e2e

RGB = ["env.obs_mode=rgb", "env.image_size=[32,32]", "env.max_episode_steps=8"]


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield
    ray.shutdown()


def test_ppo_smolvla_expert_only_publishes_trainable_weights(tmp_path):
    trainer = Trainer(
        tiny_config(
            tmp_path,
            *RGB,
            "model=smolvla_tiny",
            "model.train=expert",
            "runtime=sync",
            "train.iterations=1",
        )
    )
    published = trainer.learner.policy_state()
    trainable = {n for n, p in trainer.eval_policy.named_parameters() if p.requires_grad}
    assert set(published) == trainable
    assert not any(".vlm." in name for name in published)
    assert trainer.run() == 0
    rows = read_metrics(trainer.run_dir)
    assert rows[-1]["version"] == 1 and rows[-1]["learner/value_loss"] is not None
    saved = trainer.run_dir / "checkpoints" / "iter_000001"
    assert (saved / "policy" / "model.safetensors").is_file()
    assert load_policy(saved).kind == "smolvla"


def test_grpo_pi0_lora_from_a_plain_lerobot_folder(tmp_path):
    overrides = [*RGB, "model=pi0_tiny", "model.train=lora", "model.value_head=false"]
    cfg = tiny_config(tmp_path, *overrides)
    torch.manual_seed(1)
    start = build_policy(cfg.model, obs_spec_for(cfg.env))
    folder = save_policy(start, tmp_path / "pretrained_model")
    (folder / RL_POST_FILE).unlink()  # as LeRobot would have written it (plus tokenizer files)
    trainer = Trainer(
        tiny_config(
            tmp_path,
            *overrides,
            f"init_from={folder}",
            "algo=grpo",
            "algo.group_size=2",
            "algo.dynamic_sampling.enabled=false",
            "runtime=sync",
            "train.iterations=1",
            "train.steps_per_segment=auto",
        )
    )
    loaded = {k: v for k, v in trainer.eval_policy.state_dict().items() if k.startswith("model.")}
    original = {k: v for k, v in start.state_dict().items() if k.startswith("model.")}
    assert all(torch.equal(loaded[k], original[k]) for k in original if ".lora_" not in k)
    assert trainer.run() == 0
    rows = read_metrics(trainer.run_dir)
    assert rows[-1]["version"] == 1 and rows[-1]["adv/groups_total"] == 1

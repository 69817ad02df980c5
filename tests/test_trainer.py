"""The driver in serial mode (no Ray): same components, one process."""

import json
import shutil

import pytest
import torch

from rl_post.cli import main as cli_main
from rl_post.config import ConfigError, load_config
from rl_post.runtime.batch import advantage_inputs, flatten_batch
from rl_post.runtime.collector import merge_segments
from rl_post.trainer import Trainer, prepare_config
from tests.trainer_helpers import read_metrics, tiny_config

pytestmark = pytest.mark.e2e

DIST_ENV_VARS = {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"}

DETERMINISTIC_KEYS = [
    "rollout/episode_return",
    "rollout/decision_reward",
    "adv/adv_mean",
    "adv/return_mean",
    "learner/policy_loss",
    "learner/value_loss",
    "learner/approx_kl",
    "perf/env_steps",
    "version",
]


def test_sync_ppo_first_minibatch_ratio_is_one_and_run_writes_outputs(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, "runtime=serial", "train.iterations=2"))
    from rl_post.algorithms.objective import compute_advantages

    gather = trainer.collector.gather(trainer.version)
    segment = merge_segments(gather.segments)
    adv = compute_advantages(advantage_inputs(segment), trainer.cfg.algo)
    batch = flatten_batch(segment, adv["advantages"], adv["returns"], adv["mask"])
    policy = trainer.learner._policy
    with torch.no_grad():
        new = policy.evaluate(batch["obs"], batch["stored"])
    ratio = torch.exp(new.logprob.sum(dim=(1, 2)) - batch["logprob_old"].sum(dim=(1, 2)))
    assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-5)
    trainer.collector.drain()

    assert trainer.run() == 0
    rows = read_metrics(trainer.run_dir)
    assert [r["iteration"] for r in rows] == [1, 2]
    assert rows[-1]["version"] == 2 and rows[-1]["perf/env_steps"] > 0
    assert {
        "time/sim_s",
        "time/inference_s",
        "time/learner_s",
        "time/weight_sync_s",
        "time/idle_s",
    } <= set(rows[-1])
    assert (trainer.run_dir / "config.yaml").is_file()
    assert (trainer.run_dir / "checkpoints" / "iter_000002" / "policy").is_dir()


def test_eval_at_start_critic_warmup_and_learning_curve(tmp_path):
    trainer = Trainer(
        tiny_config(
            tmp_path,
            "runtime=serial",
            "train.iterations=2",
            "train.critic_warmup_iterations=1",
            "eval.episodes=2",
            "eval.num_envs=2",
            "eval.every=2",
        )
    )
    assert trainer.run() == 0
    rows = read_metrics(trainer.run_dir)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[0]["perf/env_steps"] == 0 and rows[0]["eval/episodes"] == 2
    assert rows[1]["learner/policy_lr_scale"] == 0.0
    assert rows[2]["learner/policy_lr_scale"] == 1.0 and "eval/success_rate" in rows[2]
    assert (trainer.run_dir / "learning_curve.png").stat().st_size > 0
    # both policies on the same seeds, the headline (eval.mode) under eval/*, eval time apart
    for row in (rows[0], rows[2]):
        assert row["eval/deterministic/episodes"] == 2 and row["eval/stochastic/episodes"] == 2
        assert row["eval/success_rate"] == row["eval/deterministic/success_rate"]
        assert row["time/eval_s"] > 0
    assert "time/eval_s" not in rows[1] and rows[2]["perf/eval_wall_s"] > rows[0]["time/eval_s"]
    # the eval envs started once and served all evaluations; the checkpoint records its env
    meta = json.loads(
        (trainer.run_dir / "checkpoints" / "iter_000002" / "policy" / "meta.json").read_text()
    )
    assert meta["env"]["tasks"] == ["PickCube-v1"] and meta["env"]["max_episode_steps"] == 16
    assert meta["run"] == "PickCube-v1-flow_tiny-ppo"
    assert trainer.eval_env is None  # closed with the run


def test_first_time_train_shows_stages_keeps_library_output_in_the_log(tmp_path):
    """What a new user sees: start-up stages from the first second, the split of critic warm-up
    and policy updates, an ETA, [eval] lines on lines of their own, and no DeepSpeed / Ray
    warnings on the console (they are in the run's train.log)."""
    import os
    import subprocess
    import sys

    from tests.trainer_helpers import TINY

    args = [
        *TINY,
        "runtime=serial",
        "train.iterations=2",
        "train.critic_warmup_iterations=1",
        "eval.episodes=1",
        "eval.num_envs=1",
        "eval.every=1",
        f"output_root={tmp_path}",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "rl_post.cli", "train", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if k not in DIST_ENV_VARS},
    )
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    stages = [
        "rl-post train: config composed",
        "config checked: PickCube-v1-flow_tiny-ppo",
        "2 update(s) = 1 critic warm-up (policy frozen) + 1 policy updates",
        "outputs in",
        "probing the env",
        "learner ready",
        "rollout workers ready",
    ]
    positions = [console.find(stage) for stage in stages]
    assert -1 not in positions and positions == sorted(positions), list(
        zip(stages, positions, strict=True)
    )
    assert console.lstrip().startswith("[start")
    assert "train [critic warm-up 0/1]" in console and "train [policy" in console
    assert "eta " in console
    eval_lines = [line for line in console.split("\n") if "[eval] iteration" in line]
    assert len(eval_lines) == 3  # before training, after each of the 2 updates
    for line in eval_lines:  # drawn over a cleared bar, never glued to it
        assert line.split("\r")[-1].lstrip().startswith("[eval] iteration"), repr(line)
    assert "real_accelerator" not in console and "[WARNING]" not in console
    (log,) = tmp_path.glob("*/*/train.log")
    text = log.read_text()
    assert "real_accelerator" in text  # DeepSpeed's start-up warning, kept in the run's log
    assert "config checked" in text and "rl-post train: done" in console


def test_critic_warmup_needs_a_critic(tmp_path):
    cfg = tiny_config(
        tmp_path, "algo=grpo", "algo.group_size=2", "train.critic_warmup_iterations=3"
    )
    with pytest.raises(ConfigError, match="critic_warmup_iterations=3"):
        prepare_config(cfg)


def test_resume_continues_counters_and_reproduces_next_iteration(tmp_path):
    overrides = [
        "runtime=serial",
        "train.iterations=2",
        "train.reset_each_segment=true",
        "checkpoint.every=1",
        "checkpoint.keep_last=5",
    ]
    first = Trainer(tiny_config(tmp_path / "a", *overrides))
    assert first.run() == 0
    reference = read_metrics(first.run_dir)

    resumed_dir = tmp_path / "b"
    shutil.copytree(first.run_dir, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / "iter_000002")
    (resumed_dir / "metrics.jsonl").write_text(
        (first.run_dir / "metrics.jsonl").read_text().splitlines()[0] + "\n"
    )

    second = Trainer(tiny_config(tmp_path / "c", "runtime=serial", f"resume={resumed_dir}"))
    assert second.iteration == 1 and second.version == 1
    assert second.run() == 0
    rows = read_metrics(resumed_dir)
    assert [r["iteration"] for r in rows] == [1, 2]
    for key in DETERMINISTIC_KEYS:
        assert rows[1][key] == pytest.approx(reference[1][key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize(
    "preset", ["flow_ppo_rl", "flow_grpo_rl", "token_grpo_rl", "mlp_ppo_scratch"]
)
def test_learning_proof_presets_compose_and_validate(preset):
    cfg = prepare_config(load_config("train", [f"presets={preset}"]))
    assert cfg.env.num_envs % cfg.env.group_size == 0
    assert int(cfg.train.segments_per_update) >= 1


def test_mlp_ppo_scratch_preset_is_maniskill_ppo_on_this_runtime():
    cfg = prepare_config(load_config("train", ["env=pushcube", "presets=mlp_ppo_scratch"]))
    assert cfg.model.kind == "gaussian" and cfg.env.control_mode == "pd_joint_delta_pos"
    assert (cfg.algo.gamma, cfg.algo.lam, cfg.algo.target_kl, cfg.algo.lr) == (0.8, 0.9, 0.1, 3e-4)
    assert (cfg.algo.update_epochs, cfg.algo.num_minibatches, cfg.algo.max_grad_norm) == (
        8,
        4,  # minibatches of 200 (ppo.py's 32 gives 25 at 800 decisions per update: measured worse)
        0.5,
    )
    assert cfg.env.num_envs * cfg.train.steps_per_segment * cfg.train.iterations == 400_000
    pick = load_config("train", ["presets=mlp_ppo_scratch", "env.tasks=[PickCube-v1]"])
    assert pick.name == "PickCube-v1-mlp_gaussian-ppo-mlp_ppo_scratch"


def test_num_envs_not_divisible_by_group_size_fails_before_workers_start(tmp_path):
    cfg = tiny_config(tmp_path, "algo=grpo", "algo.group_size=4", "env.num_envs=6")
    with pytest.raises(ConfigError, match="num_envs=6 is not divisible"):
        prepare_config(cfg)


def test_checkpoint_of_another_model_kind_fails_before_workers_start(tmp_path):
    from rl_post.envs.spec import ObsSpec
    from rl_post.models.checkpoint import save_policy
    from rl_post.models.factory import build_policy

    token_cfg = tiny_config(tmp_path, "model=token_tiny")
    spec = ObsSpec(state_dim=42, action_dim=7, action_low=(-1.0,) * 7, action_high=(1.0,) * 7)
    save_policy(build_policy(token_cfg.model, spec), tmp_path / "token_ckpt")
    with pytest.raises(ConfigError, match="token"):
        Trainer(tiny_config(tmp_path, "model=flow_tiny", f"init_from={tmp_path / 'token_ckpt'}"))
    assert not (tmp_path / "PickCube-v1-flow_tiny-ppo").exists()


def test_cli_reports_unknown_key_and_unknown_group_choice(capsys):
    assert cli_main(["train", "algo.not_a_key=1"]) == 2
    assert "unknown config key 'algo.not_a_key'" in capsys.readouterr().err
    # a missing top-level group is named by its whole override path, not by Hydra's message
    assert cli_main(["train", "run.name=x"]) == 2
    assert "unknown config key 'run.name'" in capsys.readouterr().err
    assert cli_main(["train", "algo=ppx"]) == 2
    err = capsys.readouterr().err
    assert "unknown algo 'ppx'" in err and "grpo" in err and "ppo" in err


def test_ppo_without_value_head_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="value_head"):
        prepare_config(tiny_config(tmp_path, "model.value_head=false"))


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_writes_a_final_checkpoint(tmp_path, signum):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.trainer_helpers import TINY

    args = [
        *TINY,
        "runtime=serial",
        "train.iterations=100000",
        "checkpoint.every=0",
        f"output_root={tmp_path}",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl_post.cli", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, like a terminal's foreground job
        # a fresh launch: not the rendezvous variables an in-process learner of this pytest set
        env={k: v for k, v in os.environ.items() if k not in DIST_ENV_VARS},
    )
    deadline = time.time() + 600  # generous: a bound, not a timing target
    metrics = list(tmp_path.glob("*/*/metrics.jsonl"))
    while (
        time.time() < deadline
        and proc.poll() is None
        and not (metrics and metrics[0].read_text().count("\n") >= 2)
    ):
        time.sleep(1)
        metrics = list(tmp_path.glob("*/*/metrics.jsonl"))
    assert metrics and proc.poll() is None, (
        proc.communicate()[0].decode()[-3000:] if proc.poll() is not None else "no metrics"
    )
    # SIGINT to the whole group is what Ctrl-C does; SIGTERM to the driver is what a scheduler does
    if signum == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        output = proc.communicate(timeout=180)[0].decode()
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("no exit 180 s after the signal:\n" + proc.communicate()[0].decode()[-4000:])
    assert proc.returncode == 130, output[-2000:]
    assert "stopped after update" in output
    checkpoints = list(metrics[0].parent.glob("checkpoints/iter_*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "trainer_state.pt").is_file()


def test_resume_of_an_init_from_run_restores_normalization_and_frozen_weights(tmp_path):
    """A resumed run builds its workers from a fresh initialisation; they must get the whole
    state (normalization statistics, frozen modules), not only the trainable weights."""
    from rl_post.envs.factory import obs_spec_for
    from rl_post.models import build_policy, save_policy

    cfg = tiny_config(tmp_path, "runtime=serial")
    spec = obs_spec_for(cfg.env)
    start = build_policy(cfg.model, spec)
    stats = start.normalization_stats()
    stats["state_mean"] = stats["state_mean"] + 0.5
    stats["state_std"] = stats["state_std"] * 2.0
    start.set_normalization(stats)
    save_policy(start, tmp_path / "sft")
    overrides = ["runtime=serial", "train.iterations=1", "model.frozen_modules=[backbone]"]
    first = Trainer(tiny_config(tmp_path, *overrides, f"init_from={tmp_path / 'sft'}"))
    assert first.run() == 0
    with (first.run_dir / "metrics.jsonl").open("a") as f:  # a row of work lost in a crash
        f.write('{"iteration": 2, "lost": true}\n')
    resumed = Trainer(
        tiny_config(tmp_path, "runtime=serial", "train.iterations=2", f"resume={first.run_dir}")
    )
    learner_state = resumed.learner.policy_state(full=True)
    worker = resumed.pool.workers[0]
    worker.collect_segment(1, False)  # pushed weights are swapped in at a chunk-step boundary
    worker_state = worker.policy.state_dict()
    assert torch.equal(learner_state["normalizer.state_mean"], stats["state_mean"])
    for name, tensor in learner_state.items():
        assert torch.equal(worker_state[name], tensor), name
        assert torch.equal(resumed.eval_policy.state_dict()[name], tensor), name
    assert [r["iteration"] for r in read_metrics(first.run_dir)] == [1]  # eval.episodes=0
    resumed.collector.drain()
    resumed.close()

"""The driver loop of `rl-post train`.

Reads top to bottom like a single-controller RL loop: collect, score, compute advantages, update,
push weights, log, evaluate, checkpoint. `runtime.mode=async` runs the same steps with collection
of the next batch overlapping the update of this one; `runtime.use_ray=false` runs every component
in this process (the serial debug mode).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from rl_post.config import ConfigError, check_preset_serves_tasks, tasks_tag
from rl_post.console import Console
from rl_post.data.segment import Segment
from rl_post.eval.stats import milestone_shares
from rl_post.run_dir import existing_run_dir, new_run_dir, write_config
from rl_post.run_logger import RunLogger, format_duration, format_eta, remaining_evals
from rl_post.runtime.batch import advantage_inputs, batch_size, flatten_batch
from rl_post.runtime.build import (
    build_learner,
    build_local_workers,
    build_ray_actors,
    init_ray,
    plan_layout,
)
from rl_post.runtime.collector import GatherResult, SegmentCollector, merge_gathered
from rl_post.runtime.rollout_pool import LocalRolloutPool, RayRolloutPool
from rl_post.stop_request import StopRequest

TRAINER_STATE_FILE = "trainer_state.pt"
START_POLICY_DIR = "start_policy"
LOG_FILE = "train.log"  # everything the run printed, library and worker output included


def prepare_config(cfg: DictConfig) -> DictConfig:
    """Derive the settings that follow from the algorithm, and reject bad combinations early,
    before any process or actor starts."""
    from rl_post.algorithms.registry import ALGORITHMS, validate_algo_cfg
    from rl_post.envs.settings import parse_env_settings

    cfg = cfg.copy()
    validate_algo_cfg(cfg.algo)
    spec = ALGORITHMS[str(cfg.algo.name)]
    execute = int(cfg.model.execute_steps)
    if execute < 1 or execute > int(cfg.model.action_horizon):
        raise ConfigError(
            f"model.execute_steps={execute} must be between 1 and model.action_horizon={cfg.model.action_horizon}"
        )
    if spec.uses_critic and not bool(cfg.model.value_head):
        raise ConfigError(
            f"algo={cfg.algo.name} trains a critic but model.value_head=false; "
            "set model.value_head=true or use a critic-free algorithm (algo=grpo or algo=rloo)"
        )
    with open_dict(cfg):
        group_size = int(cfg.algo.group_size)
        uses_groups = spec.uses_groups
        cfg.env.group_size = group_size if uses_groups else 1
        if uses_groups:
            # A group must start from one initial state and its trajectories must be complete to be
            # compared, so group methods collect whole, synchronized episodes.
            cfg.env.reset_mode = "synchronized"
        reset_each = cfg.train.reset_each_segment
        cfg.train.reset_each_segment = (
            bool(uses_groups) if reset_each == "auto" else bool(reset_each)
        )
        steps = cfg.train.steps_per_segment
        if steps == "auto":
            steps = math.ceil(int(cfg.env.max_episode_steps) / execute) if uses_groups else 8
        cfg.train.steps_per_segment = int(steps)
    parse_env_settings(cfg.env)
    plan_layout(int(cfg.env.num_envs), int(cfg.env.group_size), cfg.runtime)
    warmup = int(cfg.train.critic_warmup_iterations)
    if warmup < 0 or (warmup > 0 and not spec.uses_critic):
        raise ConfigError(
            f"train.critic_warmup_iterations={warmup}: must be >= 0, and > 0 only for an algorithm "
            f"with a critic (algo={cfg.algo.name} has {'one' if spec.uses_critic else 'none'})"
        )
    if int(cfg.train.get("segments_per_update", 1)) < 1:
        raise ConfigError(
            f"train.segments_per_update={cfg.train.segments_per_update} must be >= 1 (segments "
            "each rollout worker collects per update)"
        )
    if int(cfg.train.iterations) < 1:
        raise ConfigError(f"train.iterations={cfg.train.iterations} must be >= 1")
    if warmup >= int(cfg.train.iterations):
        raise ConfigError(
            f"train.critic_warmup_iterations={warmup} leaves no policy update: the warm-up counts "
            f"toward train.iterations={cfg.train.iterations}; raise train.iterations above "
            f"{warmup} or shorten the warm-up"
        )
    check_preset_serves_tasks(cfg)
    return cfg


def startup_summary(cfg: DictConfig) -> list[str]:
    """What the run will do, shown before anything slow starts: the update split (critic warm-up
    counts toward train.iterations), the batch, and what evaluation will cost."""
    from rl_post.eval.modes import eval_modes
    from rl_post.eval.rollout import resolve_num_envs

    total, warmup = int(cfg.train.iterations), int(cfg.train.critic_warmup_iterations)
    split = (
        f" = {warmup} critic warm-up (policy frozen) + {total - warmup} policy updates"
        if warmup
        else ""
    )
    segments = int(cfg.train.get("segments_per_update", 1))
    lines = [
        f"{tasks_tag(cfg.env.tasks)}, "
        f"{cfg.model.name}, {cfg.algo.name} ({cfg.runtime.mode}); {total} update(s){split}; "
        f"batch {cfg.env.num_envs} envs x {cfg.train.steps_per_segment} decisions"
        + (f" x {segments} segments" if segments > 1 else "")
    ]
    episodes = int(cfg.eval.episodes)
    if episodes > 0:
        modes = eval_modes(str(cfg.eval.mode), bool(cfg.eval.get("both_modes", False)))
        every = int(cfg.eval.every)
        when = ("at start, " if bool(cfg.eval.at_start) else "") + (
            f"every {every} updates and at the end" if every > 0 else "at the end"
        )
        tasks = len(set(cfg.env.tasks))
        num_envs = resolve_num_envs(cfg.eval.num_envs, cfg.env, episodes * tasks)
        lines.append(
            f"evaluation {when}: {episodes} episodes x {tasks} task(s) x {len(modes)} mode(s) "
            f"({', '.join(modes)}), up to {cfg.env.max_episode_steps} steps each, on {num_envs} "
            "envs; timed apart from training (time/eval_s)"
        )
    return lines


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def episode_metrics(segment: Segment) -> dict[str, float]:
    episodes = segment.episodes
    metrics: dict[str, float] = {"rollout/episodes": float(len(episodes))}
    if episodes:
        metrics["rollout/success_rate"] = float(np.mean([e.success_once for e in episodes]))
        metrics["rollout/success_at_end"] = float(np.mean([e.success_at_end for e in episodes]))
        metrics["rollout/episode_return"] = float(np.mean([e.episode_return for e in episodes]))
        metrics["rollout/episode_length"] = float(np.mean([e.length for e in episodes]))
        for name, share in milestone_shares(episodes).items():
            metrics[f"rollout/milestone/{name}"] = share
    active = segment.active.float()
    metrics["rollout/decision_reward"] = float(
        (segment.reward * active).sum() / active.sum().clamp(min=1)
    )
    return metrics


def consumed_lag(batch: dict[str, Any], learner_version: int) -> float:
    """Largest version lag among the decisions the learner actually trained on."""
    versions = batch["version"]
    return float(learner_version - int(versions.min())) if versions.numel() else 0.0


def time_breakdown(
    gather: GatherResult, learner_s: float, sync_s: float, iteration_s: float, mode: str
) -> dict[str, float]:
    """Seconds per phase in this iteration, as seen from the driver.

    Rollout workers run in parallel, so sim and inference are means over workers. Idle is the time
    nothing useful happened on the critical path: in sync mode the iteration minus rollout, learner
    and weight sync; in async mode (rollout overlaps the update) the learner's wait for segments.
    """
    workers = max(1, len(gather.worker_timings))
    sim = sum(t["sim_wait_s"] for t in gather.worker_timings) / workers
    inference = sum(t["inference_s"] for t in gather.worker_timings) / workers
    swap = sum(t["weight_swap_s"] for t in gather.worker_timings) / workers
    if mode == "async":
        idle = gather.wait_s
    else:
        idle = iteration_s - (sim + inference + swap) - learner_s - sync_s
    return {
        "time/sim_s": sim,
        "time/inference_s": inference,
        "time/learner_s": learner_s,
        "time/weight_sync_s": sync_s + swap,
        "time/idle_s": max(0.0, idle),
        "time/driver_wait_s": gather.wait_s,
        "time/iteration_s": iteration_s,
    }


def nominal_env_steps_per_update(cfg: DictConfig) -> int:
    """Env steps one update collects when no episode ends early: every env executes
    model.execute_steps env steps per decision."""
    return (
        int(cfg.env.num_envs)
        * int(cfg.train.steps_per_segment)
        * int(cfg.train.get("segments_per_update", 1))
        * int(cfg.model.execute_steps)
    )


def planned_iterations(
    iterations: int, budget: int, iteration: int, env_steps: int, nominal_per_update: int
) -> int:
    """Updates the run will make: `iterations`, or fewer where the env-step `budget` (0: none)
    is reached first. The env steps per update are measured once an update has run; before
    that the nominal count stands in (episodes that end early only make it an upper bound)."""
    if budget <= 0:
        return iterations
    measured = iteration > 0 and env_steps > 0
    per_update = env_steps / iteration if measured else float(nominal_per_update)
    if per_update <= 0:
        return iterations
    left = max(0, math.ceil((budget - env_steps) / per_update))
    return min(iterations, iteration + left)


class Trainer:
    def __init__(self, cfg: DictConfig, console: Console | None = None):
        from rl_post.envs.factory import obs_spec_for
        from rl_post.models.checkpoint import load_policy
        from rl_post.models.factory import build_policy

        self._owns_console = console is None  # the caller's console may capture fds 1 and 2
        self.console = console = console or Console()
        self.resume_dir = existing_run_dir(cfg.resume) if cfg.resume else None
        if self.resume_dir is not None:
            cfg = self._merge_resume_config(cfg, self.resume_dir)
        env_notes = self._env_from_init_checkpoint(cfg) if self.resume_dir is None else []
        self.cfg = cfg = prepare_config(cfg)
        console.stage(f"config checked: {cfg.name}")
        for note in env_notes:
            console.stage(note)
        for line in startup_summary(cfg):
            console.stage(line)
        # Oversubscribed intra-op threads slow small CPU models by 10-50x on a shared machine.
        torch.set_num_threads(max(1, int(cfg.runtime.torch_threads)))
        self.run_dir = self.resume_dir or new_run_dir(str(cfg.output_root), str(cfg.name))
        write_config(
            self.run_dir, cfg, "config.yaml" if self.resume_dir is None else "config.resume.yaml"
        )
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        capture = str(cfg.logger.get("third_party_output", "console")) == "log_file"
        console.open_log(self.run_dir / LOG_FILE, capture=capture and not self._owns_console)
        console.stage(
            f"outputs in {self.run_dir}"
            + (f" (library and worker output: {LOG_FILE})" if console.capturing else "")
        )
        console.stage("probing the env for its observation and action spaces")
        self.spec = obs_spec_for(cfg.env)
        from rl_post.rewards.base import build_scorer, parse_reward_settings

        parse_reward_settings(cfg)  # a bad reward config fails before any worker starts
        policy = build_policy(cfg.model, self.spec)
        if cfg.init_from and self.resume_dir is None:
            from rl_post.models.checkpoint import check_checkpoint_compatible
            from rl_post.models.checkpoint_env import MISMATCH_FLAG

            allow = bool(cfg.get(MISMATCH_FLAG, False))
            warning = check_checkpoint_compatible(
                str(cfg.init_from), cfg.model, self.spec, allow_bound_mismatch=allow
            )
            if warning:
                console.stage(warning)
            loaded = load_policy(
                str(cfg.init_from),
                expect_config=cfg.model,
                spec=self.spec,
                allow_bound_mismatch=allow,
            )
            policy.load_state_dict(loaded.state_dict())
        self.eval_policy = build_policy(cfg.model, self.spec)
        self.eval_policy.load_state_dict(policy.state_dict())
        self.eval_env: Any = None
        seed_everything(int(cfg.seed))

        console.stage(f"building the learner ({cfg.learner.num_ranks} rank(s), DeepSpeed)")
        self.learner = build_learner(policy, cfg, self.spec)
        console.stage("learner ready")
        self.layout = plan_layout(int(cfg.env.num_envs), int(cfg.env.group_size), cfg.runtime)
        weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
        shards = self.layout.num_workers * self.layout.stages
        if bool(cfg.runtime.use_ray):
            console.stage("starting Ray")
            init_ray(cfg.runtime)
            console.stage(
                f"rollout workers starting: {self.layout.num_workers} worker(s), {shards} env "
                f"shard(s) of {self.layout.envs_per_shard} envs"
            )
            actors = build_ray_actors(cfg, self.spec, self.layout, weights)
            self._wait_for_actors(actors, float(cfg.runtime.startup_timeout_s))
            self.pool: Any = RayRolloutPool(actors)
        else:
            console.stage(
                f"env shards starting in this process: {shards} shard(s) of "
                f"{self.layout.envs_per_shard} envs"
            )
            self.pool = LocalRolloutPool(build_local_workers(cfg, self.spec, self.layout, weights))
            console.stage("rollout workers ready")
        self.collector = SegmentCollector(
            self.pool,
            steps_per_segment=int(cfg.train.steps_per_segment),
            reset_each_segment=bool(cfg.train.reset_each_segment),
            mode=str(cfg.runtime.mode),
            max_staleness=int(cfg.runtime.max_staleness),
            segments_per_update=int(cfg.train.get("segments_per_update", 1)),
        )
        self.scorer = build_scorer(cfg, self.spec, use_ray=bool(cfg.runtime.use_ray))
        self.reward_metrics: dict[str, float] = {}
        self.iteration = 0
        self.version = 0
        self.env_steps = 0
        self.wall_s = 0.0
        self.eval_wall_s = 0.0
        self.last_eval_s: float | None = None
        if self.resume_dir is not None:
            self._load_latest_checkpoint()

    @staticmethod
    def _env_from_init_checkpoint(cfg: DictConfig) -> list[str]:
        """init_from: the env defaults to the checkpoint's recorded settings (the user's env=,
        env.<key>= and the preset's env keys win); a task / obs / control mismatch is an error
        unless allow_task_mismatch=true. Checks the model kind too, before anything starts."""
        if not cfg.init_from:
            return []
        from rl_post.models.checkpoint import check_architecture, read_checkpoint
        from rl_post.models.checkpoint_env import describe, env_from_checkpoint
        from rl_post.models.vla.lerobot_io import lerobot_dir, read_lerobot_folder

        lerobot = lerobot_dir(str(cfg.init_from))
        if lerobot is not None and read_lerobot_folder(lerobot).rl_post is None:
            # A folder LeRobot wrote records neither our model config nor the env it served;
            # the model= the user passed describes it and env= stands as given.
            return [f"init_from is a plain LeRobot folder: env as configured ({cfg.env.tasks})"]
        info = read_checkpoint(str(cfg.init_from))
        check_architecture(info, cfg.model)
        taken, warning = env_from_checkpoint(cfg, cfg.init_from, info.meta)
        notes = [] if taken is None else [f"env from init_from: {describe(taken)}"]
        return [*notes, warning] if warning else notes

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        total = int(cfg.train.iterations)
        logger = RunLogger(
            self.run_dir,
            cfg.logger,
            OmegaConf.to_container(cfg, resolve=True),
            total,
            self.iteration,
            str(cfg.name),
            console=self.console,
        )
        if self.iteration == 0:
            self._save_start_policy()
        if self.iteration == 0 and bool(cfg.eval.at_start) and int(cfg.eval.episodes) > 0:
            # The "before" point of the learning curve, measured by the same code as every later one.
            logger.log(0, {**self.evaluate(), "perf/env_steps": 0.0, "perf/wall_s": 0.0})
        logger.start(self._phase())
        stop = StopRequest()
        interrupted = None
        try:
            with stop:
                self._train_loop(logger, total, stop)
        except KeyboardInterrupt as exc:  # a second signal, or one outside the main thread's loop
            interrupted = f"interrupted ({exc or 'KeyboardInterrupt'})"
        if interrupted is None and stop.requested:
            interrupted = f"{stop.describe()}: stopped after update {self.iteration}"
        if interrupted is not None:
            logger.message(f"{interrupted}; writing a final checkpoint")
            self.collector.drain()
            self.save_checkpoint()
            logger.close()
            self.close()
            return 130
        self.collector.drain()
        if not (self.run_dir / "checkpoints" / self._checkpoint_name(self.iteration)).exists():
            self.save_checkpoint()
        logger.close()
        self.close()
        self._write_before_after()
        elapsed = time.perf_counter() - self.console.started
        other = max(0.0, elapsed - self.wall_s - self.eval_wall_s)
        self.console.line(
            f"rl-post train: done in {format_duration(elapsed)} (training "
            f"{format_duration(self.wall_s)}, evaluation {format_duration(self.eval_wall_s)}, "
            f"start-up and checkpoints {format_duration(other)}); outputs in {self.run_dir}"
        )
        return 0

    def _write_before_after(self) -> None:
        """<run>/summary.json and one console line: first vs last held-out evaluation."""
        from rl_post.run_summary import before_after, describe, eval_rows

        summary = before_after(eval_rows(self.run_dir / "metrics.jsonl"))
        if summary is None:
            return
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.console.line(f"rl-post train: {describe(summary)}")

    def _train_loop(self, logger: RunLogger, total: int, stop: StopRequest) -> None:
        """Updates until train.iterations, the env-step budget, or a stop request (checked
        between updates: Ctrl-C / SIGTERM never lands inside one)."""
        cfg = self.cfg
        while self.iteration < total and not self._budget_spent() and not stop.requested:
            start = time.perf_counter()
            gather = self.collector.gather(self.version)  # 1. collect
            segment = merge_gathered(gather, continuing=not bool(cfg.train.reset_each_segment))
            self._score(segment)  # 2. score (rewards are the env's unless a reward model is set)
            from rl_post.algorithms.objective import compute_advantages

            adv = compute_advantages(advantage_inputs(segment), cfg.algo)  # 3. advantages
            batch = flatten_batch(segment, adv["advantages"], adv["returns"], adv["mask"])
            lag = consumed_lag(batch, self.version)
            learner_start = time.perf_counter()
            warming_up = self.iteration < int(cfg.train.critic_warmup_iterations)
            update_stats = (
                self.learner.update(batch, policy_lr_scale=0.0 if warming_up else 1.0)
                if batch_size(batch) > 0
                else {"skipped_update": 1.0}
            )
            learner_s = time.perf_counter() - learner_start  # 4. update
            sync_start = time.perf_counter()
            if batch_size(batch) > 0:
                self.version += 1
                self.pool.push_weights(self.version, self.learner.policy_state())  # 5. push weights
            sync_s = time.perf_counter() - sync_start
            self.iteration += 1
            iteration_s = time.perf_counter() - start
            self.wall_s += iteration_s
            steps = int(segment.steps.sum())
            self.env_steps += steps
            metrics = {
                **episode_metrics(segment),
                **self.reward_metrics,
                **{f"adv/{k}": v for k, v in adv["stats"].items()},
                **{f"learner/{k}": v for k, v in update_stats.items()},
                **time_breakdown(gather, learner_s, sync_s, iteration_s, str(cfg.runtime.mode)),
                "rollout/policy_lag_max": float(gather.max_lag),
                "rollout/stale_dropped": float(gather.stale_dropped),
                "rollout/consumed_lag_max": lag,
                "learner/batch_size": float(batch_size(batch)),
                "perf/env_steps": float(self.env_steps),
                "perf/env_steps_per_s": steps / max(iteration_s, 1e-9),
                "perf/wall_s": self.wall_s,
                "version": float(self.version),
            }
            for event in gather.events:
                logger.message(f"[event] {event}")
            metrics["events"] = len(gather.events)
            evaluated = self._due(cfg.eval.every)
            if evaluated:  # 6. evaluate
                metrics.update(self.evaluate())
            logger.log(self.iteration, metrics)  # 7. log
            if evaluated:
                self._plot_learning_curve()
            logger.progress(
                self.iteration,
                metrics,
                self._eta(iteration_s),
                self._phase(),
                total=self._planned_iterations(),
            )
            if self._due(cfg.checkpoint.every):  # 8. checkpoint
                self.save_checkpoint()

    def _save_start_policy(self) -> None:
        """The policy as RL starts from it, with this run's model config (sampler, noise, critic):
        `<run>/start_policy` is what a before/after comparison evaluates as "before"."""
        from rl_post.models.checkpoint import save_policy

        target = self.run_dir / START_POLICY_DIR
        if not target.exists():
            save_policy(
                self.eval_policy,
                target,
                extra_meta={"iteration": 0},
                env=self.cfg.env,
                run=str(self.cfg.name),
            )

    def _budget_spent(self) -> bool:
        """train.max_env_steps (0: no budget) ends the run at the first update that reaches it."""
        budget = int(self.cfg.train.get("max_env_steps", 0) or 0)
        return budget > 0 and self.env_steps >= budget

    def _planned_iterations(self) -> int:
        """train.iterations, or fewer where train.max_env_steps ends the run first, so the bar's
        total and the ETA show when the run really ends."""
        cfg = self.cfg
        return planned_iterations(
            iterations=int(cfg.train.iterations),
            budget=int(cfg.train.get("max_env_steps", 0) or 0),
            iteration=self.iteration,
            env_steps=self.env_steps,
            nominal_per_update=nominal_env_steps_per_update(cfg),
        )

    def _phase(self) -> str:
        """The bar's label: the critic warm-up counts toward train.iterations, so with one the
        label shows which part the run is in and how far: 'train [critic warm-up 3/10]', then
        'train [policy 5/50]' (the bar itself counts all iterations)."""
        warmup = int(self.cfg.train.critic_warmup_iterations)
        total = self._planned_iterations()
        if warmup <= 0:
            return "train"
        if self.iteration < warmup:
            return f"train [critic warm-up {self.iteration}/{warmup}]"
        return f"train [policy {self.iteration - warmup}/{total - warmup}]"

    def _eta(self, last_iteration_s: float) -> str:
        """Remaining time from training iterations only, plus the evaluations still due."""
        per_iteration = self.wall_s / self.iteration if self.iteration else last_iteration_s
        planned = self._planned_iterations()
        left = planned - self.iteration
        evals = remaining_evals(self.iteration, planned, int(self.cfg.eval.every))
        eval_s = (self.last_eval_s or 0.0) * evals if int(self.cfg.eval.episodes) > 0 else 0.0
        return format_eta(per_iteration * left, eval_s)

    def _due(self, every: int) -> bool:
        every = int(every)
        last = self.iteration == int(self.cfg.train.iterations) or self._budget_spent()
        return (every > 0 and self.iteration % every == 0) or last

    def _score(self, segment: Segment) -> None:
        """Rewrite segment.reward with the configured reward (`reward=...`; env reward by default)."""
        self.reward_metrics = self.scorer.score(segment)

    def _plot_learning_curve(self) -> None:
        from rl_post.learning_curve import plot_learning_curve

        if bool(self.cfg.logger.jsonl):
            plot_learning_curve(self.run_dir)

    # ---- evaluation ---------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Held-out evaluation of the current policy in every mode of eval.modes (the headline
        eval.mode first) on the same seeds; the eval envs start once and serve every evaluation."""
        from rl_post.eval.modes import eval_metrics, eval_modes, one_line
        from rl_post.eval.rollout import evaluate_policy, make_eval_env, resolve_num_envs

        cfg = self.cfg
        episodes = int(cfg.eval.episodes)
        if episodes <= 0:
            return {}
        started = time.perf_counter()
        self.eval_policy.load_state_dict(self.learner.policy_state(), strict=False)
        seeds = [int(cfg.eval.seed_base) + i for i in range(episodes)]
        modes = eval_modes(str(cfg.eval.mode), bool(cfg.eval.get("both_modes", False)))
        tasks = list(dict.fromkeys(cfg.env.tasks))
        num_envs = resolve_num_envs(cfg.eval.num_envs, cfg.env, episodes * len(tasks))
        if self.eval_env is None:
            self.console.line(f"[eval] starting {num_envs} eval envs (kept for every evaluation)")
            self.eval_env = make_eval_env(cfg.env, num_envs, episodes)
        reports = {
            mode: evaluate_policy(
                self.eval_policy,
                cfg.env,
                seeds=seeds,
                mode=mode,
                num_envs=num_envs,
                generator_seed=int(cfg.eval.get("generator_seed", 0)),
                progress=True,
                progress_file=self.console.stream,
                env=self.eval_env,
            )
            for mode in modes
        }
        self.last_eval_s = time.perf_counter() - started
        self.eval_wall_s += self.last_eval_s
        self.console.line(
            f"[eval] iteration {self.iteration}: {one_line(reports)} "
            f"({format_duration(self.last_eval_s)})"
        )
        return {
            **eval_metrics(reports, modes[0]),
            "time/eval_s": self.last_eval_s,
            "perf/eval_wall_s": self.eval_wall_s,
        }

    # ---- checkpoints ------------------------------------------------------------------------------
    @staticmethod
    def _checkpoint_name(iteration: int) -> str:
        return f"iter_{iteration:06d}"

    def save_checkpoint(self) -> Path:
        from rl_post.models.checkpoint import TRAINING_CHECKPOINT_POLICY_DIR, save_policy

        target = self.run_dir / "checkpoints" / self._checkpoint_name(self.iteration)
        partial = target.with_name(target.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        self.eval_policy.load_state_dict(self.learner.policy_state(), strict=False)
        save_policy(
            self.eval_policy,
            partial / TRAINING_CHECKPOINT_POLICY_DIR,
            extra_meta={"iteration": self.iteration},
            env=self.cfg.env,
            run=str(self.cfg.name),
        )
        self.learner.save(partial / "learner")
        state = {
            "iteration": self.iteration,
            "version": self.version,
            "env_steps": self.env_steps,
            "wall_s": self.wall_s,
            "rollout": self.pool.call("state"),
            "rng": rng_state(),
        }
        torch.save(state, partial / TRAINER_STATE_FILE)
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)  # a checkpoint directory is complete or absent, never half-written
        self._prune_checkpoints()
        return target

    def _prune_checkpoints(self) -> None:
        keep = int(self.cfg.checkpoint.keep_last)
        found = sorted(
            p
            for p in (self.run_dir / "checkpoints").glob("iter_*")
            if not p.name.endswith(".partial")
        )
        for old in found[:-keep] if keep > 0 else []:
            shutil.rmtree(old)

    def _load_latest_checkpoint(self) -> None:
        found = sorted(
            p
            for p in (self.run_dir / "checkpoints").glob("iter_*")
            if not p.name.endswith(".partial")
        )
        if not found:
            raise ConfigError(
                f"resume={self.run_dir}: no checkpoint under {self.run_dir / 'checkpoints'}"
            )
        latest = found[-1]
        self.learner.load(latest / "learner")
        state = torch.load(latest / TRAINER_STATE_FILE, weights_only=False)
        self.iteration = int(state["iteration"])
        self.version = int(state["version"])
        self.env_steps = int(state["env_steps"])
        self.wall_s = float(state["wall_s"])
        set_rng_state(state["rng"])
        self._drop_metrics_after(self.iteration)
        # Workers and the eval copy were built from a fresh initialisation (a resume does not
        # re-read init_from): give them everything once, frozen weights and normalization too.
        full = self.learner.policy_state(full=True)
        self.eval_policy.load_state_dict(full)
        self.pool.push_weights(self.version, full)
        for worker_state, index in zip(state["rollout"], range(len(self.pool)), strict=True):
            self._load_worker_state(index, worker_state)

    def _drop_metrics_after(self, iteration: int) -> None:
        """Rows logged after the checkpoint being resumed describe updates that are lost (they
        will be redone); keep the curve to what the restored state actually went through."""
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        import json

        lines = path.read_text().splitlines()
        kept = [line for line in lines if line and json.loads(line)["iteration"] <= iteration]
        if len(kept) != len(lines):
            path.write_text("".join(line + "\n" for line in kept))

    def _load_worker_state(self, index: int, worker_state: dict) -> None:
        worker = self.pool.workers[index]
        if hasattr(worker, "load_state") and not hasattr(worker.load_state, "remote"):
            worker.load_state(worker_state)
        else:
            import ray

            ray.get(worker.load_state.remote(worker_state))

    @staticmethod
    def _merge_resume_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
        """A resumed run keeps its recorded config; only the iteration budget may change, and only
        when `train.iterations` was given on this command line (it differs from the default)."""
        from rl_post.config import load_config

        saved = OmegaConf.load(run_dir / "config.yaml")
        default_iterations = int(load_config("train").train.iterations)
        with open_dict(saved):
            saved.resume = str(run_dir)
            if int(cfg.train.iterations) != default_iterations:
                saved.train.iterations = int(cfg.train.iterations)
        return saved  # type: ignore[return-value]

    def _wait_for_actors(self, actors: list[Any], timeout_s: float) -> None:
        """Wait for the rollout workers (which build their env shards in process on the cpu
        backend), then for any EnvWorker actors, showing k/N as each comes up."""
        import ray

        deadline = time.monotonic() + timeout_s
        try:
            shard_lists = self._wait_counting(
                [a.env_actor_ids.remote() for a in actors], "rollout workers started", deadline
            )
            pings = [shard.ping.remote() for shards in shard_lists for shard in shards]
            if pings:  # env shards in EnvWorker actors (gpu backend, or placement.env_shards=actor)
                self._wait_counting(pings, "env shard actors ready", deadline)
            self._wait_counting(
                [a.ready.remote() for a in actors], "rollout workers ready", deadline
            )
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"rollout workers did not start within runtime.startup_timeout_s={timeout_s:g}s; check "
                "`ray status` for missing CPU/GPU resources (runtime.placement.*_num_cpus/_num_gpus)"
            ) from None

    def _wait_counting(self, pending: list[Any], what: str, deadline: float) -> list[Any]:
        """ray.get of `pending` (results in its order), one stage line per finished call."""
        import ray

        total, left = len(pending), list(pending)
        results: dict[Any, Any] = {}
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ray.exceptions.GetTimeoutError(what)
            done, left = ray.wait(left, num_returns=1, timeout=remaining)
            for ref in done:
                results[ref] = ray.get(ref)  # raises the actor's start-up error, if any
            if done:
                self.console.stage(f"{what} {total - len(left)}/{total}")
        return [results[ref] for ref in pending]

    def close(self) -> None:
        if self.eval_env is not None:
            self.eval_env.close()
            self.eval_env = None
        self.scorer.close()
        self.pool.close()
        if hasattr(self.learner, "close"):
            self.learner.close()
        if self._owns_console:
            self.console.close()


def _interrupt_on_sigterm() -> None:
    """Cluster schedulers preempt with SIGTERM; treat it like Ctrl-C so a final checkpoint is written."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def train_main(cfg: DictConfig) -> int:
    _interrupt_on_sigterm()
    console = Console()
    try:
        trainer = Trainer(cfg, console)
        return trainer.run()
    except BaseException:
        if console.log_path is not None:
            console.line(f"rl-post train: stopped; the full log is {console.log_path}")
        raise
    finally:
        console.close()

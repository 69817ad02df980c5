"""`rl-post proof <recipe>`: demos -> few-shot SFT -> RL -> held-out eval before/after -> result row.

Each stage is the `rl-post` command a user would type (recorded in the result), run as a child
process with its own progress bar. A state file under `proof.root/<recipe>/` records what each
finished stage produced, so a killed proof continues where it stopped: finished stages are
skipped, an interrupted RL run resumes from its last checkpoint (`rl-post train resume=...`),
an interrupted SFT or evaluation starts again.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rl_post.config import ConfigError
from rl_post.proof.recipe import Recipe, parse_recipe
from rl_post.proof.report import MARKDOWN_HEADER, build_row, eval_summary, markdown_rows

STATE_FILE = "state.json"
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Env settings that change an evaluation's number: taken from the RL run's resolved config so the
# before/after evaluations run the task exactly as RL trained on it.
EVAL_ENV_KEYS = (
    "tasks",
    "obs_mode",
    "control_mode",
    "reward_mode",
    "max_episode_steps",
    "ignore_terminations",
    "cameras",
    "image_size",
)


class ProofState:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self.data.setdefault("stages", {})

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {})

    def done(self, name: str) -> bool:
        return bool(self.data["stages"].get(name, {}).get("done"))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)  # never a half-written state file


def command_line(args: list[str]) -> str:
    return "rl-post " + " ".join(shlex.quote(a) for a in args)


def proof_command(recipe: str, extra_rl: list[str]) -> str:
    """The `rl-post proof` line that reproduces a row, extra RL overrides included (each list
    element double-quoted: Hydra reads `a=b` inside a list only as a quoted string)."""
    args = ["proof", recipe]
    if extra_rl:
        args.append("proof.rl_extra_overrides=[" + ",".join(f'"{o}"' for o in extra_rl) + "]")
    return command_line(args)


def newest_run(folder: Path) -> Path:
    runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not runs:
        raise ConfigError(f"no run directory was written under {folder}")
    return runs[-1]


def latest_policy_checkpoint(run_dir: Path) -> Path:
    found = sorted(
        p for p in (run_dir / "checkpoints").glob("iter_*") if not p.name.endswith(".partial")
    )
    if not found:
        raise ConfigError(f"RL run {run_dir} has no checkpoint; the RL stage did not finish")
    return found[-1] / "policy"


def env_overrides_of(run_dir: Path) -> list[str]:
    """`env.<key>=<value>` overrides reproducing a run's env settings (EVAL_ENV_KEYS)."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    out = []
    for key in EVAL_ENV_KEYS:
        if key in cfg.env:
            value = OmegaConf.to_container(cfg.env, resolve=True)[key]
            text = json.dumps(value).replace('"', "").replace(" ", "")
            out.append(f"env.{key}={text}")
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ProofRunner:
    def __init__(self, cfg: DictConfig):
        self.recipe: Recipe = parse_recipe(OmegaConf.to_container(cfg.recipe, resolve=True))
        self.root = Path(str(cfg.proof.root)) / self.recipe.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.runs = self.root / "runs"
        self.state = ProofState(self.root / STATE_FILE)
        self.publish_dir = Path(str(cfg.proof.publish_dir)) if cfg.proof.publish else None
        self.extra_rl = [str(o) for o in cfg.proof.rl_extra_overrides or []]
        self.commands: dict[str, str] = dict(self.state.data.get("commands", {}))
        self.commands.setdefault("proof", proof_command(self.recipe.name, self.extra_rl))

    # -- running one command --------------------------------------------------------------------
    def _run(self, stage: str, args: list[str], command_key: str | None = None) -> None:
        line = command_line(args)
        # `command_key` keeps a resume from replacing the command that started the stage: the
        # result row must name the command that reproduces the run, not `resume=<local dir>`.
        self.commands[command_key or stage] = line
        self.state.data["commands"] = self.commands
        self.state.save()
        print(f"[proof] {stage}: {line}", flush=True)
        # Each stage is its own job: launcher variables of this process (e.g. a MASTER_PORT it
        # already listens on) must not leak into the stage's process group.
        env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
        env.setdefault("WANDB_MODE", "offline")
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "rl_post.cli", *args], env=env)
        seconds = time.perf_counter() - started
        self.state.stage(stage)["seconds"] = self.state.stage(stage).get("seconds", 0.0) + seconds
        self.state.save()
        if result.returncode != 0:
            raise ConfigError(
                f"proof stage '{stage}' failed (exit {result.returncode}) after {seconds:.0f}s: "
                f"{line}; fix the cause and rerun the same `rl-post proof` command to continue"
            )

    def _finish(self, stage: str, **outputs: Any) -> None:
        record = self.state.stage(stage)
        record.update(outputs, done=True)
        self.state.save()

    # -- stages ---------------------------------------------------------------------------------
    def demos(self) -> None:
        r = self.recipe
        self._run(
            "demos",
            [
                "collect-demos",
                *r.env,
                f"collect.num_demos={r.num_demos}",
                f"collect.num_workers={r.demo_workers}",
                *r.demo_overrides,
            ],
        )
        self._finish("demos")

    def sft(self) -> None:
        r = self.recipe
        folder = self.runs / "sft"
        self._run(
            "sft",
            ["sft", *r.env, *r.sft_overrides, f"output_root={self.runs}", "name=sft"],
        )
        run_dir = newest_run(folder)
        self._finish("sft", run_dir=str(run_dir), checkpoint=str(run_dir / "checkpoints" / "best"))

    def rl(self, stage: str, init_from: str | None, overrides: tuple[str, ...]) -> None:
        record = self.state.stage(stage)
        started = record.get("run_dir")
        if started and not any((Path(started) / "checkpoints").glob("iter_*[0-9]")):
            record.pop("run_dir")  # it stopped before its first checkpoint: start it again
        if record.get("run_dir"):  # an interrupted run: continue it
            self._run(stage, ["train", f"resume={record['run_dir']}"], f"{stage}_resume")
        else:
            folder = self.runs / stage
            before = set(folder.iterdir()) if folder.is_dir() else set()
            args = ["train", *self.recipe.env, *overrides, f"output_root={self.runs}"]
            args += [f"name={stage}", *([f"init_from={init_from}"] if init_from else [])]
            args += self.extra_rl
            try:
                self._run(stage, args)
            finally:
                new = sorted(set(folder.iterdir()) - before) if folder.is_dir() else []
                if new:
                    record["run_dir"] = str(new[-1])
                    self.state.save()
        run_dir = Path(record["run_dir"])
        self._finish(stage, run_dir=str(run_dir), final=str(latest_policy_checkpoint(run_dir)))

    def evaluate(self, stage: str, checkpoint: str, env_from: Path) -> None:
        r = self.recipe
        reports = {}
        for mode in r.eval_modes:
            name = f"{stage}-{mode}"
            self._run(
                name,
                [
                    "eval",
                    *r.env,
                    *env_overrides_of(env_from),
                    f"eval.checkpoint={checkpoint}",
                    f"eval.episodes={r.eval_episodes}",
                    f"eval.mode={mode}",
                    "eval.both_modes=false",  # one mode per stage: each is resumable on its own
                    f"eval.num_envs={r.eval_num_envs}",
                    *r.eval_overrides,
                    f"output_root={self.runs}",
                    f"name={name}",
                ],
            )
            reports[mode] = str(newest_run(self.runs / name) / "eval_report.json")
        self._finish(stage, reports=reports)

    def _summaries(self, stage: str) -> dict[str, dict[str, Any]]:
        reports = self.state.stage(stage)["reports"]
        return {m: eval_summary(json.loads(Path(p).read_text())) for m, p in reports.items()}

    # -- the whole proof ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        r = self.recipe
        plan = ["demos", "sft", "rl", "eval_before", "eval_after"]
        if r.baseline_overrides is not None:
            plan += ["baseline", "eval_baseline"]
        for index, stage in enumerate(plan, start=1):
            if self.state.done(stage):
                print(f"[proof] {index}/{len(plan)} {stage}: done earlier, reused", flush=True)
                continue
            print(f"[proof] {index}/{len(plan)} {stage}", flush=True)
            self._run_stage(stage)
        row = self.report()
        return row

    def _run_stage(self, stage: str) -> None:
        r = self.recipe
        if stage == "demos":
            self.demos()
        elif stage == "sft":
            self.sft()
        elif stage == "rl":
            self.rl("rl", self.state.stage("sft")["checkpoint"], r.rl_overrides)
        elif stage == "eval_before":
            run_dir = Path(self.state.stage("rl")["run_dir"])
            self.evaluate("eval_before", str(run_dir / "start_policy"), run_dir)
        elif stage == "eval_after":
            run_dir = Path(self.state.stage("rl")["run_dir"])
            self.evaluate("eval_after", self.state.stage("rl")["final"], run_dir)
        elif stage == "baseline":
            rl_rows = read_jsonl(Path(self.state.stage("rl")["run_dir"]) / "metrics.jsonl")
            budget = int(rl_rows[-1]["perf/env_steps"])
            overrides = (*(r.baseline_overrides or ()), f"train.max_env_steps={budget}")
            self.rl("baseline", None, overrides)
        elif stage == "eval_baseline":
            run_dir = Path(self.state.stage("baseline")["run_dir"])
            self.evaluate("eval_baseline", self.state.stage("baseline")["final"], run_dir)

    def report(self) -> dict[str, Any]:
        rl_dir = Path(self.state.stage("rl")["run_dir"])
        rl_rows = read_jsonl(rl_dir / "metrics.jsonl")
        run_mode = str(OmegaConf.load(rl_dir / "config.yaml").eval.mode)
        baseline = None
        if self.state.done("eval_baseline"):
            base_dir = Path(self.state.stage("baseline")["run_dir"])
            baseline = {
                "after": self._summaries("eval_baseline"),
                "env_steps": read_jsonl(base_dir / "metrics.jsonl")[-1]["perf/env_steps"],
            }
        row = build_row(
            self.recipe,
            self._summaries("eval_before"),
            self._summaries("eval_after"),
            rl_rows,
            run_mode,
            self.commands,
            baseline,
        )
        row["stage_seconds"] = {
            name: record.get("seconds", 0.0) for name, record in self.state.data["stages"].items()
        }
        (self.root / "result.json").write_text(json.dumps(row, indent=2) + "\n")
        markdown = "\n".join([MARKDOWN_HEADER, *markdown_rows(row)]) + "\n"
        (self.root / "result.md").write_text(markdown)
        curve = rl_dir / "learning_curve.png"
        if curve.exists():
            shutil.copy(curve, self.root / "learning_curve.png")
        if self.publish_dir is not None:
            self.publish_dir.mkdir(parents=True, exist_ok=True)
            published = {k: v for k, v in row.items()}
            (self.publish_dir / f"{self.recipe.name}.json").write_text(
                json.dumps(published, indent=2) + "\n"
            )
            if curve.exists():
                shutil.copy(curve, self.publish_dir / f"{self.recipe.name}.png")
        print(markdown, end="")
        print(f"[proof] result: {self.root / 'result.json'}")
        return row


def proof_main(cfg: DictConfig) -> int:
    ProofRunner(cfg).run()
    return 0

"""Metrics to a JSONL file (always), wandb (offline by default) and a one-line console progress bar.

The bar's ETA counts training iterations only: evaluation time is estimated apart (evaluations
still due x the last one's duration), so a long start evaluation does not inflate the rate.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rl_post.console import Console
from rl_post.progress import progress_bar

BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}{postfix}"


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_duration(seconds: float) -> str:
    """'42s', '3:07' (m:ss) or '1:02:03' (h:mm:ss)."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_eta(train_s: float, eval_s: float) -> str:
    """'eta 6:20 (train 4:10 + eval 2:10)', or just 'eta 4:10' without evaluations left."""
    if eval_s <= 0:
        return f"eta {format_duration(train_s)}"
    return (
        f"eta {format_duration(train_s + eval_s)} (train {format_duration(train_s)} + eval "
        f"{format_duration(eval_s)})"
    )


def remaining_evals(iteration: int, total: int, every: int) -> int:
    """Evaluations still due after `iteration`: every `every` updates and always at the end."""
    due = {i for i in range(iteration + 1, total + 1) if every > 0 and i % every == 0}
    if total > iteration:
        due.add(total)
    return len(due)


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        logger_cfg: Any,
        config: dict,
        total: int,
        initial: int = 0,
        name: str = "",
        console: Console | None = None,
    ):
        self.run_dir = run_dir
        self.console = console or Console()
        self.jsonl = (run_dir / "metrics.jsonl").open("a") if logger_cfg.jsonl else None
        self.console_every = max(1, int(logger_cfg.console_every))
        self.total, self.initial = total, initial
        self.bar: tqdm | None = None
        self.wandb_run = None
        if logger_cfg.wandb:
            os.environ.setdefault("WANDB_MODE", "offline")
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.wandb_run = wandb.init(
                project=str(logger_cfg.wandb_project),
                name=name,
                dir=str(run_dir),
                config=config,
                reinit=True,
            )

    def start(self, phase: str = "train") -> None:
        """Show the training bar (after the start evaluation, which draws its own)."""
        self.bar = progress_bar(
            total=self.total,
            initial=self.initial,
            desc=phase,
            unit="upd",
            file=self.console.stream,
            bar_format=BAR_FORMAT,
        )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"iteration": step, **{k: _plain(v) for k, v in metrics.items()}}
        if self.jsonl:
            self.jsonl.write(json.dumps(row) + "\n")
            self.jsonl.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(
                {k: v for k, v in row.items() if isinstance(v, int | float)}, step=step
            )

    def progress(
        self,
        step: int,
        metrics: dict[str, Any],
        eta: str = "",
        phase: str = "",
        total: int | None = None,
    ) -> None:
        if self.bar is None:
            self.start(phase or "train")
        assert self.bar is not None
        if total is not None and total != self.bar.total:  # an env-step budget ends it sooner
            self.bar.total = self.total = total
        if phase:
            self.bar.set_description_str(phase, refresh=False)
        self.bar.update(1)
        if step % self.console_every == 0:
            shown = {
                "succ": metrics.get("rollout/success_rate"),
                "ret": metrics.get("rollout/episode_return"),
                "sps": metrics.get("perf/env_steps_per_s"),
                "lag": metrics.get("rollout/policy_lag_max"),
                # how far the update moved the policy, measured after the step
                "kl": metrics.get("learner/post_kl"),
                "clip": metrics.get("learner/post_clip_frac"),
                "dact": metrics.get("learner/post_action_change_rms"),
                "noise": metrics.get("learner/noise_share"),
                "snr": metrics.get("learner/grad_snr"),
                "lr": metrics.get("learner/lr"),
            }
            parts = [
                f"{k}={v:.3g}"
                for k, v in shown.items()
                if isinstance(v, int | float) and math.isfinite(v)
            ]
            self.bar.set_postfix_str(", ".join([eta, *parts] if eta else parts))

    def message(self, text: str) -> None:
        self.console.line(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.jsonl:
            self.jsonl.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()

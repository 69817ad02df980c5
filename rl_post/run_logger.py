"""Metrics to a JSONL file (always), wandb (offline by default) and a one-line console progress bar."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        logger_cfg: Any,
        config: dict,
        total: int,
        initial: int = 0,
        name: str = "",
    ):
        self.run_dir = run_dir
        self.jsonl = (run_dir / "metrics.jsonl").open("a") if logger_cfg.jsonl else None
        self.console_every = max(1, int(logger_cfg.console_every))
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
        self.bar = tqdm(total=total, initial=initial, desc="train", unit="upd", dynamic_ncols=True)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"iteration": step, **{k: _plain(v) for k, v in metrics.items()}}
        if self.jsonl:
            self.jsonl.write(json.dumps(row) + "\n")
            self.jsonl.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(
                {k: v for k, v in row.items() if isinstance(v, int | float)}, step=step
            )

    def progress(self, step: int, metrics: dict[str, Any]) -> None:
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
            self.bar.set_postfix(
                {
                    k: f"{v:.3g}"
                    for k, v in shown.items()
                    if isinstance(v, int | float) and math.isfinite(v)
                }
            )

    def message(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        if self.jsonl:
            self.jsonl.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()

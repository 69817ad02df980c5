"""`rl-post diagnose`: a short training run with every update measurement switched on.

What it answers before a long run: is the policy gradient of one batch signal or noise (SNR,
and the batch that would give SNR 1), how far does one update at this step size move the policy
(post-update KL per decision, clip fraction, deterministic-action change), and how much of the
exploration noise can the likelihood credit (noise share). Results: the run directory's
metrics.jsonl and a diagnose.json with per-update values and medians.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from omegaconf import DictConfig, open_dict

from rl_post.config import ConfigError

REPORTED = (
    ("learner/grad_snr", "gradient SNR of the batch"),
    ("learner/grad_snr_cosine", "cosine between split gradients"),
    ("learner/grad_snr_batch_for_1", "decisions per update for SNR 1"),
    ("learner/batch_size", "decisions in the batch"),
    ("learner/post_kl", "post-update KL per decision"),
    ("learner/post_kl_token", "post-update KL per token"),
    ("learner/post_kl_token_mean_part", "its closed-form part from the means' move"),
    ("learner/post_kl_token_std_part", "its closed-form part from the stds' change"),
    ("learner/post_clip_frac", "post-update clip fraction"),
    ("learner/post_ratio_std", "post-update ratio std"),
    ("learner/post_action_change_rms", "deterministic action change (RMS, normalized)"),
    ("learner/noise_share", "share of action variance the likelihood sees"),
    ("learner/early_stopped", "updates stopped early by target_kl"),
    ("learner/lr", "policy lr"),
)


def _median(values: list[float]) -> float:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def summarize(rows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Medians over the measured (post-warm-up) updates of the reported metrics."""
    measured = [r for r in rows if int(r.get("iteration", 0)) > warmup]
    return {
        "updates": len(measured),
        "medians": {key: _median([r.get(key, math.nan) for r in measured]) for key, _ in REPORTED},
        "per_update": [{key: r.get(key) for key, _ in REPORTED} for r in measured],
    }


def diagnose_main(cfg: DictConfig) -> int:
    from rl_post.trainer import Trainer

    measured = int(cfg.diagnose.iterations)
    if measured < 1:
        raise ConfigError(f"diagnose.iterations={measured} must be >= 1")
    warmup = int(cfg.train.critic_warmup_iterations)
    with open_dict(cfg):
        cfg.train.iterations = warmup + measured
    trainer = Trainer(cfg)
    code = trainer.run()
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").open()]
    summary = summarize(rows, warmup)
    (trainer.run_dir / "diagnose.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"rl-post diagnose: {summary['updates']} measured updates (after {warmup} warm-up)")
    for key, label in REPORTED:
        print(f"  {label:<48} {summary['medians'][key]:.4g}")
    print(f"  details: {trainer.run_dir / 'diagnose.json'}")
    return code

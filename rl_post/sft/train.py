"""`rl-post sft`: behaviour cloning of a flow or token policy on motion-planned demos.

Steps: load demos (checked against env obs/control mode), split episodes into train/val, turn
them into H-step action-chunk targets, put data normalization stats into the policy, then AdamW
with warmup + cosine decay on `policy.bc_loss`. Validation loss is computed with a fixed RNG
seed (flow losses draw noise and times), so it is comparable across steps. Outputs go to
runs/<name>/<timestamp>/: config.yaml, metrics.jsonl, checkpoints/{best,final}.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from rl_post.config import ConfigError, check_preset_serves_tasks
from rl_post.data.demos import load_demos
from rl_post.envs.settings import parse_env_settings
from rl_post.envs.spec import ObsSpec
from rl_post.run_dir import new_run_dir, write_config
from rl_post.sft.dataset import BCData, build_bc_data, split_episodes
from rl_post.sft.schedule import warmup_cosine_factor


@dataclass(frozen=True)
class SFTSettings:
    dataset: Path
    num_demos: int | None
    val_episodes: int
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    warmup_steps: int
    min_lr_ratio: float
    grad_clip: float
    val_every: int
    val_batch_size: int
    log_every: int
    action_quantiles: tuple[float, float] | None
    state_std_floor: float
    state_noise_std: float
    seed: int
    val_seed: int


def parse_sft_settings(cfg: DictConfig) -> SFTSettings:
    s = cfg.sft
    quantiles = s.action_quantiles
    settings = SFTSettings(
        dataset=Path(str(s.dataset)),
        num_demos=None if s.num_demos is None else int(s.num_demos),
        val_episodes=int(s.val_episodes),
        steps=int(s.steps),
        batch_size=int(s.batch_size),
        lr=float(s.lr),
        weight_decay=float(s.weight_decay),
        betas=(float(s.betas[0]), float(s.betas[1])),
        warmup_steps=int(s.warmup_steps),
        min_lr_ratio=float(s.min_lr_ratio),
        grad_clip=float(s.grad_clip),
        val_every=int(s.val_every),
        val_batch_size=int(s.val_batch_size),
        log_every=int(s.log_every),
        action_quantiles=None if quantiles is None else (float(quantiles[0]), float(quantiles[1])),
        state_std_floor=float(s.state_std_floor),
        state_noise_std=float(s.get("state_noise_std", 0.0)),
        seed=int(cfg.seed),
        val_seed=int(s.val_seed),
    )
    if settings.num_demos is not None and settings.num_demos < 1:
        raise ConfigError(
            f"sft.num_demos must be >= 1 or null (all demos), got {settings.num_demos}"
        )
    if settings.steps < 1 or settings.batch_size < 1:
        raise ConfigError("sft.steps and sft.batch_size must be >= 1")
    if settings.val_episodes < 0:
        raise ConfigError("sft.val_episodes must be >= 0")
    if settings.state_noise_std < 0:
        raise ConfigError(
            f"sft.state_noise_std must be >= 0 (0 disables it), got {settings.state_noise_std}"
        )
    return settings


def make_run_dir(cfg: DictConfig) -> Path:
    run_dir = new_run_dir(str(cfg.output_root), str(cfg.name))
    write_config(run_dir, cfg)
    return run_dir


@torch.no_grad()
def validation_loss(policy: Any, data: BCData, batch_size: int, seed: int) -> float:
    """Mask-weighted mean BC loss over all of `data` with a fixed RNG state."""
    was_training = policy.training
    policy.eval()
    total, weight = 0.0, 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(data), batch_size):
            index = torch.arange(start, min(start + batch_size, len(data)))
            obs, chunks, mask = data.batch(index)
            loss, _ = policy.bc_loss(obs, chunks, mask)
            w = float(mask.sum())
            total += float(loss) * w
            weight += w
    policy.train(was_training)
    return total / max(weight, 1.0)


def normalization_from(
    data: BCData, quantiles: tuple[float, float] | None, state_std_floor: float = 0.0
) -> dict[str, Any]:
    """Stats of the training data. State dims that barely vary in the demos (e.g. the resting
    cube's tilt quaternion, std ~1e-3) get std >= state_std_floor: otherwise the small deviations
    a closed-loop policy causes become tens of "standard deviations" and derail it."""
    from rl_post.models.normalization import compute_normalization_stats

    valid = data.mask[:, 0]  # the first action of every window is a real demo action
    stats = compute_normalization_stats(data.state, data.chunks[valid, 0], quantiles=quantiles)
    stats["state_std"] = stats["state_std"].clamp_min(state_std_floor)
    return stats


def state_noise_scale(data: BCData, noise_std: float, state_std_floor: float) -> torch.Tensor:
    """Per-dim std [D] of the Gaussian state noise: `noise_std` normalized-state units, i.e.
    noise_std * max(demo std, floor). Dims that are exactly constant in the demos (zero padding
    of narrower tasks) get no noise: the env never changes them either."""
    std = data.state.std(dim=0, unbiased=False)
    scale = noise_std * std.clamp_min(state_std_floor)
    return torch.where(std > 0, scale, torch.zeros_like(scale))


def augment_state(
    state: torch.Tensor, scale: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """DART-style input noise: the policy sees states slightly off the demo trajectory and must
    still output the demo action, which damps closed-loop compounding error."""
    noise = torch.randn(state.shape, generator=generator, dtype=state.dtype)
    return state + noise * scale


def train_bc(
    policy: Any,
    train: BCData,
    val: BCData | None,
    settings: SFTSettings,
    metrics_path: Path | None = None,
    on_best: Any = None,
) -> dict[str, Any]:
    """Run the optimisation; calls `on_best(step, val_loss)` whenever validation improves."""
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(
        policy.parameters(),
        lr=settings.lr,
        betas=settings.betas,
        weight_decay=settings.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: warmup_cosine_factor(
            step, settings.warmup_steps, settings.steps, settings.min_lr_ratio
        ),
    )
    noise_scale = (
        state_noise_scale(train, settings.state_noise_std, settings.state_std_floor)
        if settings.state_noise_std > 0
        else None
    )
    history: list[dict[str, float]] = []
    best = math.inf
    initial_val = None
    if val is not None:
        initial_val = validation_loss(policy, val, settings.val_batch_size, settings.val_seed)
    started = time.perf_counter()
    log = metrics_path.open("a") if metrics_path is not None else None
    try:
        policy.train()
        running = 0.0
        for step in range(1, settings.steps + 1):
            index = torch.randint(0, len(train), (settings.batch_size,), generator=generator)
            obs, chunks, mask = train.batch(index)
            if noise_scale is not None:
                obs["state"] = augment_state(obs["state"], noise_scale, generator)
            loss, _stats = policy.bc_loss(obs, chunks, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            running += float(loss.detach())
            record: dict[str, float] = {}
            if step % settings.log_every == 0 or step == settings.steps:
                count = (
                    settings.log_every
                    if step % settings.log_every == 0
                    else step % settings.log_every
                )
                record.update(
                    train_loss=running / count,
                    grad_norm=float(grad_norm),
                    lr=scheduler.get_last_lr()[0],
                )
                running = 0.0
            if val is not None and (step % settings.val_every == 0 or step == settings.steps):
                val_loss = validation_loss(policy, val, settings.val_batch_size, settings.val_seed)
                record["val_loss"] = val_loss
                if val_loss < best:
                    best = val_loss
                    if on_best is not None:
                        on_best(step, val_loss)
            if record:
                record.update(step=step, seconds=time.perf_counter() - started)
                history.append(record)
                if log is not None:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                parts = " ".join(
                    f"{k}={v:.4g}" for k, v in record.items() if k not in ("step", "seconds")
                )
                print(f"[sft] step {step}/{settings.steps} {parts}", flush=True)
    finally:
        if log is not None:
            log.close()
    val_losses = [r["val_loss"] for r in history if "val_loss" in r]
    return {
        "history": history,
        "initial_val_loss": initial_val,
        "final_val_loss": val_losses[-1] if val_losses else None,
        "best_val_loss": best if val_losses else None,
        "seconds": time.perf_counter() - started,
    }


def check_spec_matches(spec: ObsSpec, meta: Any, dataset: Path) -> None:
    if meta.action_dim != spec.action_dim:
        raise ConfigError(
            f"demo file {dataset} has action_dim {meta.action_dim} but the env has "
            f"{spec.action_dim}; collect demos with this env config"
        )


def sft_main(cfg: DictConfig) -> int:
    from rl_post.envs.factory import obs_spec_for
    from rl_post.models.checkpoint import save_policy
    from rl_post.models.config import parse_model_config
    from rl_post.models.factory import build_policy

    settings = parse_sft_settings(cfg)
    env = parse_env_settings(cfg.env, check_device=False)
    check_preset_serves_tasks(cfg)
    check_dataset_exists(settings.dataset, env)
    model_cfg = parse_model_config(cfg.model)
    num_load = None if settings.num_demos is None else settings.num_demos + settings.val_episodes
    meta, episodes = load_demos(
        settings.dataset,
        obs_mode=env.obs_mode,
        control_mode=env.control_mode,
        tasks=list(env.tasks),
        num_demos=num_load,
        image_size=env.image_size,
    )
    train_eps, val_eps = split_episodes(episodes, settings.num_demos, settings.val_episodes)
    spec = obs_spec_for(cfg.env)
    check_spec_matches(spec, meta, settings.dataset)
    use_rgb = spec.has_rgb
    train = build_bc_data(train_eps, model_cfg.action_horizon, spec.state_dim, use_rgb)
    val = (
        build_bc_data(val_eps, model_cfg.action_horizon, spec.state_dim, use_rgb)
        if val_eps
        else None
    )

    torch.manual_seed(settings.seed)
    policy = build_policy(model_cfg, spec)
    policy.set_normalization(
        normalization_from(train, settings.action_quantiles, settings.state_std_floor)
    )
    run_dir = make_run_dir(cfg)
    ckpt_dir = run_dir / "checkpoints"
    sft_meta: dict[str, Any] = {
        "sft": {
            "dataset": str(settings.dataset.resolve()),
            "num_demos": len(train_eps),
            "num_val_episodes": len(val_eps),
            "train_seeds": [ep.seed for ep in train_eps],
            "num_samples": len(train),
        }
    }
    print(
        f"[sft] {len(train_eps)} train demos ({len(train)} samples), {len(val_eps)} val demos; "
        f"model {model_cfg.name} ({model_cfg.kind}), {sum(p.numel() for p in policy.parameters())} params; "
        f"run dir {run_dir}",
        flush=True,
    )

    def save_best(step: int, val_loss: float) -> None:
        extra = {"sft": {**sft_meta["sft"], "step": step, "val_loss": val_loss}}
        save_policy(policy, ckpt_dir / "best", extra_meta=extra, env=cfg.env, run=str(cfg.name))

    result = train_bc(policy, train, val, settings, run_dir / "metrics.jsonl", on_best=save_best)
    final_meta = {
        "sft": {**sft_meta["sft"], "step": settings.steps, "val_loss": result["final_val_loss"]}
    }
    save_policy(policy, ckpt_dir / "final", extra_meta=final_meta, env=cfg.env, run=str(cfg.name))
    summary = {k: v for k, v in result.items() if k != "history"}
    summary.update(run_dir=str(run_dir), num_demos=len(train_eps))
    (run_dir / "sft_summary.json").write_text(json.dumps(summary, indent=2))
    print(sft_done_line(result, ckpt_dir), flush=True)
    return 0


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def sft_done_line(result: dict[str, Any], ckpt_dir: Path) -> str:
    """The closing summary line (losses to 4 significant digits; n/a without validation)."""
    return (
        f"[sft] done in {result['seconds']:.1f}s; val loss {_loss(result['initial_val_loss'])} -> "
        f"{_loss(result['final_val_loss'])} (best {_loss(result['best_val_loss'])}); "
        f"checkpoints in {ckpt_dir}"
    )


def check_dataset_exists(dataset: Path, env: Any) -> None:
    """A missing demo file names the task it was derived from and the command that writes it."""
    if dataset.is_file():
        return
    tasks = ",".join(env.tasks)
    raise ConfigError(
        f"demo file {dataset} does not exist (sft.dataset for env.tasks=[{tasks}], obs_mode="
        f"{env.obs_mode}, control_mode={env.control_mode}); collect it with `rl-post "
        f"collect-demos env.tasks=[{tasks}] env.obs_mode={env.obs_mode} env.control_mode="
        f"{env.control_mode}` or pass sft.dataset=<file>"
    )

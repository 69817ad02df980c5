"""`rl-post reward train`: fit a success classifier on env-labelled demos and rollouts.

Writes runs/<name>/<timestamp>/: config.yaml, report.json (data counts, train and held-out
agreement metrics, reliability table) and classifier/ (the checkpoint for reward.checkpoint).
The held-out split is by episode, stratified by whether an episode contains a success, so the
held-out numbers measure frames of episodes the classifier never saw.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from rl_post.config import ConfigError
from rl_post.rewards.agreement import agreement_metrics, reliability_table
from rl_post.rewards.classifier import ClassifierConfig, SuccessClassifier, save_classifier
from rl_post.rewards.dataset import LabelledSet, concat, label_demos, label_rollouts

BALANCE_CHOICES = ("pos_weight", "none")


@dataclass(frozen=True)
class FitSettings:
    hidden: tuple[int, ...]
    use_rgb: bool
    conv_channels: tuple[int, ...]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    val_fraction: float
    balance: str
    threshold: float
    agreement_bins: int
    seed: int


def parse_fit_settings(cfg: DictConfig) -> FitSettings:
    m, t = cfg.reward_train.model, cfg.reward_train.fit
    settings = FitSettings(
        hidden=tuple(int(h) for h in m.hidden),
        use_rgb=bool(m.use_rgb),
        conv_channels=tuple(int(c) for c in m.conv_channels),
        epochs=int(t.epochs),
        batch_size=int(t.batch_size),
        lr=float(t.lr),
        weight_decay=float(t.weight_decay),
        val_fraction=float(t.val_fraction),
        balance=str(t.balance),
        threshold=float(cfg.reward_train.threshold),
        agreement_bins=int(cfg.reward_train.agreement_bins),
        seed=int(cfg.seed),
    )
    if settings.balance not in BALANCE_CHOICES:
        raise ConfigError(
            f"reward_train.fit.balance={settings.balance!r}; choose one of {', '.join(BALANCE_CHOICES)}"
        )
    if not 0.0 < settings.val_fraction < 1.0:
        raise ConfigError(
            f"reward_train.fit.val_fraction={settings.val_fraction} must be in (0, 1)"
        )
    if settings.epochs < 1 or settings.batch_size < 1:
        raise ConfigError("reward_train.fit.epochs and batch_size must be >= 1")
    return settings


def split_by_episode(
    data: LabelledSet, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, held-out); episodes with and without a success are split separately."""
    rng = np.random.default_rng(seed)
    ids = np.unique(data.episode)
    has_success = np.array([data.label[data.episode == e].any() for e in ids])
    held: list[int] = []
    for group in (ids[has_success], ids[~has_success]):
        if len(group) < 2:
            continue  # a lone episode stays in training
        shuffled = rng.permutation(group)
        held.extend(shuffled[: max(1, math.floor(val_fraction * len(group)))].tolist())
    is_held = np.isin(data.episode, np.asarray(held, dtype=np.int64))
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def _rgb_tensor(data: LabelledSet, rows: np.ndarray, use_rgb: bool) -> torch.Tensor | None:
    if not use_rgb:
        return None
    assert data.rgb is not None
    return torch.from_numpy(data.rgb[rows])


def predict(model: SuccessClassifier, data: LabelledSet, use_rgb: bool, batch: int) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(data), batch):
            rows = np.arange(i, min(i + batch, len(data)))
            logits = model(torch.from_numpy(data.state[rows]), _rgb_tensor(data, rows, use_rgb))
            out.append(torch.sigmoid(logits).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def fit_classifier(data: LabelledSet, s: FitSettings) -> tuple[SuccessClassifier, dict]:
    """Train on an episode split of `data`; returns the model and a report of both splits."""
    if s.use_rgb and data.rgb is None:
        raise ConfigError(
            "reward_train.model.use_rgb=true but the data has no rgb; set env.obs_mode=state_rgb"
        )
    torch.manual_seed(s.seed)
    train_rows, val_rows = split_by_episode(data, s.val_fraction, s.seed)
    train, val = data.subset(train_rows), data.subset(val_rows)
    positives = int(train.label.sum())
    if positives == 0 or positives == len(train):
        raise ConfigError(
            f"the training split has {positives} successes of {len(train)} examples; both classes "
            "are needed: add demos (reward_train.demos.path) or more rollouts"
        )
    rgb_shape = data.rgb.shape if data.rgb is not None else None
    config = ClassifierConfig(
        state_dim=int(data.state.shape[1]),
        hidden=s.hidden,
        use_rgb=s.use_rgb,
        num_cameras=int(rgb_shape[1]) if s.use_rgb and rgb_shape else 0,
        image_size=(int(rgb_shape[2]), int(rgb_shape[3])) if s.use_rgb and rgb_shape else (0, 0),
        conv_channels=s.conv_channels if s.use_rgb else (),
    )
    model = SuccessClassifier(config)
    states = torch.from_numpy(train.state)
    model.set_normalization(states.mean(0), states.std(0))
    labels = torch.from_numpy(train.label.astype(np.float32))
    pos_weight = (
        torch.tensor((len(train) - positives) / positives)
        if s.balance == "pos_weight"
        else torch.tensor(1.0)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    generator = torch.Generator().manual_seed(s.seed)
    losses = []
    for _ in range(s.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator).numpy()
        for i in range(0, len(order), s.batch_size):
            rows = order[i : i + s.batch_size]
            logits = model(states[rows], _rgb_tensor(train, rows, s.use_rgb))
            loss = loss_fn(logits, labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    report: dict = {
        "pos_weight": float(pos_weight),
        "final_loss": float(np.mean(losses[-10:])),
        "split": {
            "train": {"examples": len(train), "positives": positives},
            "val": {"examples": len(val), "positives": int(val.label.sum())},
        },
    }
    for name, part in (("train", train), ("val", val)):
        probs = predict(model, part, s.use_rgb, s.batch_size)
        report[name] = agreement_metrics(
            probs, part.label, s.threshold, s.agreement_bins, prefix=""
        )
        if name == "val":
            report["val_reliability"] = [
                asdict(b) for b in reliability_table(probs, part.label, s.agreement_bins)
            ]
    return model.eval(), report


def collect_labelled(cfg: DictConfig) -> LabelledSet:
    rt = cfg.reward_train
    sets = []
    if rt.demos.path:
        max_eps = rt.demos.max_episodes
        sets.append(
            label_demos(cfg.env, str(rt.demos.path), None if max_eps is None else int(max_eps))
        )
    if int(rt.rollouts.decisions) > 0:
        sets.append(
            label_rollouts(
                cfg.env,
                num_envs=int(rt.rollouts.num_envs),
                decisions=int(rt.rollouts.decisions),
                execute_steps=int(rt.rollouts.execute_steps),
                policy_checkpoint=None if rt.rollouts.policy is None else str(rt.rollouts.policy),
                seed=int(rt.rollouts.seed),
            )
        )
    return concat(sets)


def reward_train_main(cfg: DictConfig) -> int:
    from rl_post.run_dir import new_run_dir, write_config

    settings = parse_fit_settings(cfg)
    torch.set_num_threads(max(1, int(cfg.torch_threads)))
    run_dir = new_run_dir(str(cfg.output_root), str(cfg.name))
    write_config(run_dir, cfg)
    print(f"rl-post reward train: outputs in {run_dir}")
    start = time.perf_counter()
    data = collect_labelled(cfg)
    collect_s = time.perf_counter() - start
    print(f"labelled {len(data)} observations ({int(data.label.sum())} successes): {data.counts}")
    model, report = fit_classifier(data, settings)
    report.update(
        data=data.counts, collect_s=collect_s, fit_s=time.perf_counter() - start - collect_s
    )
    save_classifier(model, run_dir / "classifier", extra_meta={"report": _finite(report)})
    (run_dir / "report.json").write_text(json.dumps(_finite(report), indent=2) + "\n")
    val = report["val"]
    shown = ", ".join(f"{k}={v:.3f}" for k, v in val.items())
    print(f"held-out: {shown}")
    print(f"classifier: {run_dir / 'classifier'}  (use reward.checkpoint=<this path>)")
    return 0


def _finite(value: object) -> object:
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value

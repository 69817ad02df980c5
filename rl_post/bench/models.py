"""Policy-model micro-benchmark: parameter counts and act()/evaluate() latency of the tiny configs.

`python -m rl_post.bench.models` builds each model on a synthetic ObsSpec (state obs; flow_tiny
also with one 64x64 rgb camera), times act() at each batch size (median over repeats after
warm-up) and evaluate() on the stored rollout data, prints a table and writes JSON.
Latencies depend on the machine and its load: compare ratios within one run only.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from rl_post.config import config_dir
from rl_post.envs.spec import ObsSpec
from rl_post.models.factory import build_policy

INSTRUCTION = "pick up the red cube and move it to the goal"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["flow_tiny", "token_tiny"])
    parser.add_argument("--rgb-models", nargs="*", default=["flow_tiny"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 64])
    parser.add_argument("--state-dim", type=int, default=42, help="synthetic state width")
    parser.add_argument("--action-dim", type=int, default=7, help="e.g. pd_ee_delta_pose: 7")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--output", type=Path, default=Path("bench_results/models.json"))
    return parser.parse_args(argv)


def _median_ms(fn: Any, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def _obs(spec: ObsSpec, n: int, gen: torch.Generator) -> dict[str, object]:
    obs: dict[str, object] = {
        "state": torch.randn(n, spec.state_dim, generator=gen),
        "instruction": [INSTRUCTION] * n,
    }
    if spec.has_rgb:
        h, w = spec.image_size
        shape = (n, len(spec.cameras), h, w, 3)
        obs["rgb"] = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    return obs


def bench_model(name: str, spec: ObsSpec, args: argparse.Namespace) -> dict[str, Any]:
    cfg = OmegaConf.load(config_dir() / "model" / f"{name}.yaml")
    torch.manual_seed(0)
    policy = build_policy(cfg, spec).eval()
    gen = torch.Generator().manual_seed(0)
    row: dict[str, Any] = {
        "model": name,
        "kind": policy.kind,
        "obs": "state+rgb" if spec.has_rgb else "state",
        "params": sum(p.numel() for p in policy.parameters()),
        "act_ms": {},
        "evaluate_ms": {},
    }
    for n in args.batch_sizes:
        obs = _obs(spec, n, gen)
        row["act_ms"][n] = _median_ms(lambda o=obs: policy.act(o), args.repeats, args.warmup)
        stored = policy.act(obs).stored
        with torch.no_grad():
            row["evaluate_ms"][n] = _median_ms(
                lambda o=obs, s=stored: policy.evaluate(o, s), args.repeats, args.warmup
            )
    return row


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    bounds = {"action_low": (-1.0,) * args.action_dim, "action_high": (1.0,) * args.action_dim}
    state_spec = ObsSpec(state_dim=args.state_dim, action_dim=args.action_dim, **bounds)
    rgb_spec = ObsSpec(
        state_dim=args.state_dim,
        action_dim=args.action_dim,
        cameras=("base_camera",),
        image_size=(args.image_size, args.image_size),
        **bounds,
    )
    jobs = [(m, state_spec) for m in args.models] + [(m, rgb_spec) for m in args.rgb_models]
    rows = [bench_model(name, spec, args) for name, spec in jobs]
    header = f"{'model':<12}{'obs':<11}{'params':>10}" + "".join(
        f"{'act@' + str(n):>11}{'eval@' + str(n):>11}" for n in args.batch_sizes
    )
    print(header + "   (ms, median)")
    for r in rows:
        cells = "".join(
            f"{r['act_ms'][n]:>11.2f}{r['evaluate_ms'][n]:>11.2f}" for n in args.batch_sizes
        )
        print(f"{r['model']:<12}{r['obs']:<11}{r['params']:>10,}{cells}")
    result = {
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": platform.machine(),
        "state_dim": args.state_dim,
        "action_dim": args.action_dim,
        "image_size": args.image_size,
        "repeats": args.repeats,
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

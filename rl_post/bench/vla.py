"""Real-size VLA benchmark: parameter counts against the published ones, act() latency and peak
memory, and the weights each model.train mode publishes to rollout workers per update.

`python -m rl_post.bench.vla --models smolvla pi0` builds each model at its real size with random
weights (nothing is downloaded), fp32 on the CPU, for a synthetic PickCube-like interface (one
128x128 camera, a 29-dim state, 7 action dims), and writes JSON. Per model:
  params       total, of which unused (LeRobot's untied lm heads), published figure for reference
  act          seconds per act() (stochastic, batch --batch) over --calls calls after one warm-up,
               with the VLM prefix pass and one expert denoising step timed separately
  memory       process RSS after building, and peak RSS sampled during the act() calls
  weight_sync  per train mode (expert / lora / all): trainable tensors, bytes, and seconds to
               copy them to the CPU (the learner's policy_state) and load them into a policy
               (the rollout worker's swap); ray.put adds a memcpy of the same bytes
Latencies depend on the machine and its load; this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch

from rl_post.envs.spec import ObsSpec

INSTRUCTION = "pick up the red cube and move it to the goal"
# Published sizes: SmolVLA ~450M (Shukor et al. 2025, arXiv 2506.01844); pi0 3.3B = PaliGemma 3B
# + a 300M action expert (Black et al. 2024, arXiv 2410.24164).
PUBLISHED_PARAMS = {"smolvla": 450e6, "pi0": 3.3e9}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smolvla", "pi0"])
    parser.add_argument("--calls", type=int, default=3, help="timed act() calls per model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--state-dim", type=int, default=29)
    parser.add_argument("--action-dim", type=int, default=7)
    parser.add_argument("--modes", nargs="+", default=["expert", "lora", "all"])
    parser.add_argument("--output", type=Path, default=Path("bench_results/vla.json"))
    return parser.parse_args(argv)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class PeakRss:
    """Samples the process RSS every 10 ms while active."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _obs(spec: ObsSpec, n: int) -> dict[str, object]:
    gen = torch.Generator().manual_seed(0)
    h, w = spec.image_size
    return {
        "state": torch.randn(n, spec.state_dim, generator=gen),
        "rgb": torch.randint(0, 256, (n, 1, h, w, 3), generator=gen, dtype=torch.uint8),
        "instruction": [INSTRUCTION] * n,
    }


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# A CPU copy of the published weights is only timed when it fits next to the model with this
# margin (pi0's train=all copy is 11 GB, next to 14 GB of weights, on a 24 GB machine).
COPY_MARGIN_BYTES = 3 * 10**9


def _sync_cost(policy: torch.nn.Module) -> dict[str, Any]:
    named = {n: p for n, p in policy.named_parameters() if p.requires_grad}
    size = sum(p.numel() * p.element_size() for p in named.values())
    row: dict[str, Any] = {
        "tensors": len(named),
        "params": sum(p.numel() for p in named.values()),
        "bytes": size,
        "copy_s": None,
        "load_s": None,
    }
    if size + COPY_MARGIN_BYTES > _available_bytes():
        row["skipped"] = f"a {size / 1e9:.1f} GB copy does not fit in free memory"
        return row
    start = time.perf_counter()
    state = {n: p.detach().to("cpu", copy=True) for n, p in named.items()}
    row["copy_s"] = time.perf_counter() - start
    start = time.perf_counter()
    policy.load_state_dict(state, strict=False)
    row["load_s"] = time.perf_counter() - start
    del state
    gc.collect()
    return row


def bench_model(name: str, spec: ObsSpec, args: argparse.Namespace) -> dict[str, Any]:
    from rl_post.config import load_config
    from rl_post.models.config import parse_model_config
    from rl_post.models.vla import build_vla_policy
    from rl_post.models.vla.training import add_lora

    cfg = parse_model_config(load_config("train", [f"model={name}", "env.obs_mode=rgb"]).model)
    print(f"[bench vla] {name}: building at full size (random init, fp32)", flush=True)
    rss_before = _rss_bytes()
    torch.manual_seed(0)
    build_s = time.perf_counter()
    policy = build_vla_policy(cfg, spec, apply_training=False).eval()
    build_s = time.perf_counter() - build_s
    rss_built = _rss_bytes()
    total = sum(p.numel() for p in policy.parameters())
    unused = sum(p.numel() for p in policy.unused_parameters())
    network = sum(p.numel() for p in policy.model.parameters())
    obs = _obs(spec, args.batch)
    print(f"[bench vla] {name}: {total / 1e6:.1f}M params, built in {build_s:.0f}s", flush=True)
    with PeakRss() as peak, torch.no_grad():
        warmup_s = _timed(lambda: policy.act(obs))
        calls = [_timed(lambda: policy.act(obs)) for _ in range(args.calls)]
        cache = policy.encode(obs)
        prefix_s = _timed(lambda: policy.encode(obs))
        x = torch.randn(args.batch, cfg.action_horizon, cfg.max_action_dim)
        t = torch.ones(args.batch)
        step_s = _timed(lambda: policy._velocity(x, t, cache))
    print(f"[bench vla] {name}: act {statistics.mean(calls):.2f}s/call", flush=True)
    sync: dict[str, Any] = {}
    order = [m for m in ("all", "expert", "lora") if m in args.modes]
    for mode in order:  # all -> expert -> lora on the same weights (no second copy)
        policy.requires_grad_(True)
        if mode == "lora":
            add_lora(policy.vlm_module(), cfg)
        elif mode == "expert":
            policy.vlm_module().requires_grad_(False)
        if mode != "all":
            policy.vision_module().requires_grad_(False)
        for p in policy.unused_parameters():
            p.requires_grad_(False)
        sync[mode] = _sync_cost(policy)
    return {
        "model": name,
        "kind": cfg.kind,
        "params": {
            "total": total,
            "network": network,
            "rl_heads": total - network,
            "unused_lm_heads": unused,
            "total_without_unused": total - unused,
            "published": PUBLISHED_PARAMS.get(name),
        },
        "build_s": build_s,
        "act": {
            "batch": args.batch,
            "calls": args.calls,
            "warmup_s": warmup_s,
            "mean_s": statistics.mean(calls),
            "min_s": min(calls),
            "prefix_pass_s": prefix_s,
            "expert_step_s": step_s,
            "denoise_steps": cfg.num_denoise_steps,
            "action_horizon": cfg.action_horizon,
        },
        "memory": {
            "rss_before_build_gb": rss_before / 1e9,
            "rss_after_build_gb": rss_built / 1e9,
            "peak_rss_during_act_gb": peak.peak / 1e9,
            "weights_fp32_gb": total * 4 / 1e9,
        },
        "weight_sync": sync,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    size = (args.image_size, args.image_size)
    spec = ObsSpec(
        state_dim=args.state_dim,
        action_dim=args.action_dim,
        cameras=("base_camera",),
        image_size=size,
        action_low=(-1.0,) * args.action_dim,
        action_high=(1.0,) * args.action_dim,
    )
    rows = []
    for name in args.models:
        rows.append(bench_model(name, spec, args))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "kind": "rl_post.bench.vla",
            "torch": torch.__version__,
            "threads": args.threads,
            "machine": platform.machine(),
            "dtype": "float32",
            "device": "cpu",
            "interface": {
                "image": list(size),
                "state_dim": args.state_dim,
                "action_dim": args.action_dim,
            },
            "results": rows,
        }
        args.output.write_text(json.dumps(result, indent=2) + "\n")  # after each model
        gc.collect()
    for r in rows:
        p, a, m = r["params"], r["act"], r["memory"]
        print(
            f"{r['model']:<8} params {p['total'] / 1e6:8.1f}M (w/o unused {p['total_without_unused'] / 1e6:.1f}M, "
            f"published {(p['published'] or 0) / 1e6:.0f}M)  act {a['mean_s']:.2f}s (prefix {a['prefix_pass_s']:.2f}s, "
            f"step {a['expert_step_s']:.3f}s)  peak RSS {m['peak_rss_during_act_gb']:.1f} GB"
        )
        for mode, s in r["weight_sync"].items():
            timing = (
                f"copy {s['copy_s']:.3f}s  load {s['load_s']:.3f}s"
                if s["copy_s"] is not None
                else s["skipped"]
            )
            print(f"         sync[{mode:<6}] {s['bytes'] / 1e6:9.1f} MB  {timing}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

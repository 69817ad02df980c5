"""`rl-post sweep`: the throughput benchmark and a short training run over a grid of configs.

    rl-post sweep                                   env counts 1, 2, 4, 8 on this machine (CPU)
    rl-post sweep sweep.grid.algo=[ppo,grpo] 'sweep.overrides=["algo.group_size=2"]'
    rl-post sweep --cfg                             shows the grid and every setting
    rl-post sweep 'sweep.merge=[a.json,b.json]'     merges sweeps from several machines, no runs
    python -m rl_post.bench.sweep merge a.json b.json --output merged.json

Grid keys: `num_envs` (env.num_envs) and the config groups env, model, algo, runtime, learner
(each point recomposes the group from configs/<group>/<choice>.yaml). Settings inside a swept
group go in `sweep.overrides` (applied to every point), since the recomposed group replaces it.

Every point is keyed by host + config, so summaries from several machines merge into their
union; two different results under one key are both kept (the later gets `@<created>` appended).
Outputs in sweep.output_dir: <name>.json, <name>_throughput.png (env-steps/s vs env count) and
<name>_learning.png (success and return vs env steps), plus one benchmark report per point.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rl_post.config import ConfigError, load_config

GROUP_KEYS = ("env", "model", "algo", "runtime", "learner")
VALUE_KEYS = {"num_envs": "env.num_envs"}
SUMMARY_KIND = "rl_post.sweep"
SUMMARY_FORMAT = 1


# ---- grid ------------------------------------------------------------------------------------------
def grid_points(grid: dict[str, list[Any] | None]) -> list[dict[str, Any]]:
    """Cartesian product of the grid's non-empty axes, first axis outermost."""
    valid = (*VALUE_KEYS, *GROUP_KEYS)
    unknown = [k for k in grid if k not in valid]
    if unknown:
        raise ConfigError(f"sweep.grid has unknown keys {unknown}; valid keys: {', '.join(valid)}")
    axes = [(k, list(v)) for k, v in grid.items() if v is not None and len(v) > 0]
    if not axes:
        raise ConfigError(
            "sweep.grid is empty; give at least one axis, e.g. sweep.grid.num_envs=[1,2]"
        )
    names = [k for k, _ in axes]
    return [
        dict(zip(names, values, strict=True)) for values in itertools.product(*(v for _, v in axes))
    ]


def _override_key(override: str) -> str:
    key = override.split("=", 1)[0]
    return key.lstrip("+~")


def point_config(
    base: DictConfig, point: dict[str, Any], config_name: str, overrides: list[str]
) -> DictConfig:
    """The base config with the point's groups recomposed and its values set."""
    groups = [g for g in GROUP_KEYS if g in point]
    cfg = base.copy()
    if groups or overrides:
        composed = load_config(config_name, [f"{g}={point[g]}" for g in groups] + list(overrides))
        with open_dict(cfg):
            for group in groups:
                cfg[group] = composed[group]
            for override in overrides:
                key = _override_key(override)
                OmegaConf.update(cfg, key, OmegaConf.select(composed, key), force_add=True)
    with open_dict(cfg):
        for name, path in VALUE_KEYS.items():
            if name in point:
                OmegaConf.update(cfg, path, point[name])
        cfg.name = "-".join(
            [str(cfg.env.tasks[0]), str(cfg.model.name), str(cfg.algo.name), f"n{cfg.env.num_envs}"]
        )
    return cfg


def check_swept_groups_unchanged(cfg: DictConfig, config_name: str, grid_groups: list[str]) -> None:
    """A swept group is recomposed per point, so command-line changes inside it would be lost."""
    if not grid_groups:
        return
    reference = load_config(config_name)
    for group in grid_groups:
        if OmegaConf.to_container(cfg[group]) != OmegaConf.to_container(reference[group]):
            raise ConfigError(
                f"'{group}' is swept (sweep.grid.{group}) but was also changed on the command line; "
                f"those changes would be lost: pass them quoted, as 'sweep.overrides=[\"{group}.key=value\"]'"
            )


# ---- points and summaries ----------------------------------------------------------------------------
def point_key(host: str, config: dict[str, Any]) -> str:
    return "|".join(
        [
            host,
            str(config.get("env_backend")),
            "+".join(config.get("tasks", [])),
            str(config.get("obs_mode")),
            str(config.get("model")),
            str(config.get("algo")),
            f"n{config.get('num_envs')}",
        ]
    )


def point_from_report(report: dict[str, Any], curve_mode: str, report_path: str) -> dict[str, Any]:
    host = str(report["machine"]["host"])
    sps = {"sim": float(report["sim"]["env_steps_per_s"])}
    fractions: dict[str, dict[str, float]] = {}
    for r in report["rollout"]:
        name = f"rollout_{r['backend']}_pipeline{r['pipeline_stages']}"
        sps[name] = float(r["env_steps_per_s"])
        fractions[name] = r["time_fraction"]
    curve: list[dict[str, Any]] = []
    for r in report["train"]:
        name = f"train_{r['mode']}"
        sps[name] = float(r["env_steps_per_s"])
        fractions[name] = r["time_fraction"]
        if r["mode"] == curve_mode:
            curve = r["curve"]
    return {
        "key": point_key(host, report["config"]),
        "host": host,
        "created": report["created"],
        "machine": report["machine"],
        "config": report["config"],
        "throughput": {"env_steps_per_s": sps, "ratio_to_sim": report["ratios_to_sim"]},
        "time_fraction": fractions,
        "curve_mode": curve_mode,
        "curve": curve,
        "report": report_path,
    }


def failed_point(host: str, cfg: DictConfig, point: dict[str, Any], error: str) -> dict[str, Any]:
    config = {
        "tasks": list(cfg.env.tasks),
        "obs_mode": str(cfg.env.obs_mode),
        "env_backend": str(cfg.env.backend),
        "num_envs": int(cfg.env.num_envs),
        "model": str(cfg.model.name),
        "algo": str(cfg.algo.name),
    }
    return {
        "key": point_key(host, config),
        "host": host,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "grid_point": point,
        "error": error,
    }


def new_summary(name: str, points: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    return {
        "kind": SUMMARY_KIND,
        "format": SUMMARY_FORMAT,
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": sources,
        "points": points,
    }


def merge_summaries(summaries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Union of the summaries' points by key. Identical repeats collapse; differing results under
    one key are all kept (later ones keyed `<key>@<created>`), so merging never loses a point."""
    merged: dict[str, dict[str, Any]] = {}
    sources: list[str] = []
    for summary in summaries:
        if summary.get("kind") != SUMMARY_KIND:
            raise ConfigError(
                f"not a sweep summary (kind={summary.get('kind')!r}); merge the <name>.json files "
                "that `rl-post sweep` writes"
            )
        sources.extend(summary.get("sources") or [summary.get("name", "?")])
        for point in summary["points"]:
            key = point["key"]
            if key in merged and merged[key] != point:
                key = f"{point['key']}@{point['created']}"
                point = {**point, "key": key}
                if key in merged and merged[key] != point:
                    raise ConfigError(f"two different sweep points share key and time {key}")
            merged[key] = point
    return new_summary(name, [merged[k] for k in sorted(merged)], sources)


def write_summary(summary: dict[str, Any], output_dir: Path, plot: bool = True) -> dict[str, str]:
    from rl_post.bench.plots import plot_sweep_learning, plot_sweep_throughput

    output_dir.mkdir(parents=True, exist_ok=True)
    name = summary["name"]
    outputs = {"json": str(output_dir / f"{name}.json")}
    ok = [p for p in summary["points"] if "error" not in p]
    if plot:
        outputs["throughput_png"] = str(
            plot_sweep_throughput(ok, output_dir / f"{name}_throughput.png")
        )
        outputs["learning_png"] = str(plot_sweep_learning(ok, output_dir / f"{name}_learning.png"))
    Path(outputs["json"]).write_text(json.dumps(summary, indent=2) + "\n")
    return outputs


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{'point':<58}{'sim sps':>9}  ratios to sim"]
    for p in summary["points"]:
        if "error" in p:
            lines.append(f"{p['key']:<58}{'failed':>9}  {p['error'].splitlines()[0]}")
            continue
        ratios = ", ".join(
            f"{k}={v:.2f}" for k, v in p["throughput"]["ratio_to_sim"].items() if v is not None
        )
        lines.append(f"{p['key']:<58}{p['throughput']['env_steps_per_s']['sim']:>9.1f}  {ratios}")
    return "\n".join(lines)


# ---- running ---------------------------------------------------------------------------------------------
def run_sweep(cfg: DictConfig) -> dict[str, Any]:
    from rl_post.bench.throughput import default_tag, run_benchmark, write_report

    sweep = cfg.sweep
    config_name = str(sweep.config_name)
    overrides = [str(o) for o in sweep.overrides]
    grid = OmegaConf.to_container(sweep.grid, resolve=True)
    points = grid_points(grid)  # type: ignore[arg-type]
    check_swept_groups_unchanged(cfg, config_name, [g for g in GROUP_KEYS if grid.get(g)])  # type: ignore[union-attr]
    curve_mode = str(sweep.curve_mode)
    if curve_mode not in cfg.bench.train_modes:
        raise ConfigError(
            f"sweep.curve_mode={curve_mode} is not among bench.train_modes={list(cfg.bench.train_modes)}"
        )
    host = platform.node()
    results: list[dict[str, Any]] = []
    points_dir = Path(str(cfg.bench.output_dir))
    for index, point in enumerate(points, start=1):
        point_cfg = point_config(cfg, point, config_name, overrides)
        print(f"[sweep] point {index}/{len(points)}: {point}", flush=True)
        try:
            report = run_benchmark(point_cfg)
        except ConfigError as exc:
            if not bool(sweep.continue_on_error):
                raise
            print(f"[sweep] point {point} skipped: {exc}", flush=True)
            results.append(failed_point(host, point_cfg, point, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - one broken point must not lose the others' results
            if not bool(sweep.continue_on_error):
                raise
            trace = traceback.format_exc()
            print(f"[sweep] point {point} failed:\n{trace}", flush=True)
            failed = failed_point(host, point_cfg, point, f"{type(exc).__name__}: {exc}")
            results.append({**failed, "traceback": trace})
            continue
        outputs = write_report(report, points_dir, default_tag(point_cfg), bool(cfg.bench.plot))
        results.append(point_from_report(report, curve_mode, outputs["json"]))
    return new_summary(str(sweep.name), results, [f"{host}:{sweep.name}"])


def load_summaries(paths: list[str]) -> list[dict[str, Any]]:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"sweep summaries not found: {missing}; give paths to <name>.json files")
    return [json.loads(Path(p).read_text()) for p in paths]


def sweep_main(cfg: DictConfig) -> int:
    from rl_post.bench.throughput import _shutdown_ray

    output_dir = Path(str(cfg.sweep.output_dir))
    if cfg.sweep.merge:
        summary = merge_summaries(
            load_summaries([str(p) for p in cfg.sweep.merge]), str(cfg.sweep.merge_name)
        )
    else:
        try:
            summary = run_sweep(cfg)
        finally:
            _shutdown_ray()
    outputs = write_summary(summary, output_dir)
    print()
    print(format_summary(summary))
    print("wrote " + ", ".join(outputs.values()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rl_post.bench.sweep merge a.json b.json [--output merged.json]`."""
    parser = argparse.ArgumentParser(
        description="merge rl-post sweep summaries from several machines"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="union of sweep summaries, with plots")
    merge.add_argument("summaries", nargs="+", help="<name>.json files written by rl-post sweep")
    merge.add_argument("--output", type=Path, default=Path("bench_results/sweep/merged.json"))
    merge.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    try:
        summary = merge_summaries(load_summaries(args.summaries), args.output.stem)
    except ConfigError as exc:
        print(f"rl_post.bench.sweep merge: {exc}")
        return 2
    outputs = write_summary(summary, args.output.parent, plot=not args.no_plot)
    print(format_summary(summary))
    print("wrote " + ", ".join(outputs.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

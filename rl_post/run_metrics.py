"""Reading a run's metrics.jsonl (one JSON row per logged iteration) back as curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def metrics_file(run: str | Path) -> Path:
    """The metrics.jsonl of a run directory (or the file itself)."""
    path = Path(run)
    file = path / "metrics.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"{run}: no metrics.jsonl; pass a run directory runs/<name>/<stamp>"
        )
    return file


def read_rows(run: str | Path) -> list[dict[str, Any]]:
    lines = metrics_file(run).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def read_curve(run: str | Path, metric: str, x_key: str) -> tuple[list[float], list[float]]:
    """(x, y) of every row that has both keys (rows without the metric are skipped)."""
    xs, ys = [], []
    for row in read_rows(run):
        if row.get(metric) is not None and row.get(x_key) is not None:
            xs.append(float(row[x_key]))
            ys.append(float(row[metric]))
    return xs, ys

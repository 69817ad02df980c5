"""The README's results table, made from the published proof rows (docs/results/proof/*.json).

python -m rl_post.proof.table                 # print the table
python -m rl_post.proof.table --readme README.md   # rewrite it between the README's markers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rl_post.proof.report import MARKDOWN_HEADER, markdown_rows

START, END = "<!-- proof-table:start -->", "<!-- proof-table:end -->"


def table_from(folder: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    lines = [MARKDOWN_HEADER]
    for row in rows:
        lines += markdown_rows(row)
    commands = [
        f"- {row['title']}: `{_proof_command(row)}`; RL stage: `{row['commands'].get('rl', '')}`"
        for row in rows
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(commands) + "\n"


def _proof_command(row: dict[str, Any]) -> str:
    # rows published before the proof line was recorded ran the recipe as is
    return row["commands"].get("proof", f"rl-post proof {row['recipe']}")


def replace_between_markers(text: str, table: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"the README has no {START} ... {END} markers to put the table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="docs/results/proof", help="folder of result rows")
    parser.add_argument("--readme", default=None, help="rewrite this file between the markers")
    args = parser.parse_args(argv)
    table = table_from(Path(args.rows))
    if args.readme is None:
        print(table, end="")
        return 0
    path = Path(args.readme)
    path.write_text(replace_between_markers(path.read_text(), table))
    print(f"rewrote the proof table in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

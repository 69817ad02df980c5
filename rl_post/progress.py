"""Progress bars that stay readable when the output is a file (nohup logs, CI).

On a terminal a tqdm bar redraws itself in place with carriage returns. Written to a file, every
redraw lands in it: a 90-minute run leaves megabytes of one-line frames that `tail` shows as a
single garbled line. Off a terminal, `progress_bar` keeps the bar but redraws it at most every
`FILE_REFRESH_S` seconds and turns each redraw into one plain line.
"""

from __future__ import annotations

import re
import sys
from typing import IO, Any

# Seconds between redraws of a bar written to a file: a line per half minute of a long run.
FILE_REFRESH_S = 30.0
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class FrameLines:
    """A text stream for tqdm off a terminal: each redraw becomes one line (tqdm writes a redraw
    in one call, '\r' + frame); blank redraws and cursor-movement codes are dropped."""

    def __init__(self, out: IO[str]):
        self.out = out

    def write(self, text: str) -> int:
        for frame in re.split(r"[\r\n]", text):
            line = _CONTROL.sub("", frame).rstrip()
            if line.strip():
                self.out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        return False


def progress_bar(file: IO[str] | None = None, **kwargs: Any):
    """tqdm(**kwargs) drawing on `file` (default stderr), line by line when it is not a terminal."""
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    if is_terminal(stream):
        return tqdm(file=stream, dynamic_ncols=True, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    return tqdm(
        file=FrameLines(stream),
        mininterval=FILE_REFRESH_S,
        maxinterval=FILE_REFRESH_S,
        **kwargs,  # no width: tqdm then draws a 10-character bar and never cuts the postfix
    )

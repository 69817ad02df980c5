"""What a long `rl-post` command shows on the console, and where everything else goes.

Third-party libraries (DeepSpeed, Ray, ManiSkill, gloo) and the processes they start print
warnings that bury rl-post's own progress. With capture on, file descriptors 1 and 2 of this
process point at the run's log file while the command runs, so everything they (and any child
process started meanwhile) write lands there; rl-post's own lines and progress bars go to the
original console through a duplicate of its descriptor, and are copied into the log as well.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO

# When this process began (near enough: rl_post.cli imports this module first), so every stage
# line says how long the command has been running.
PROCESS_START = time.perf_counter()


class Console:
    """rl-post's own output: stage lines, messages and the streams progress bars draw on."""

    def __init__(self, started: float | None = None):
        self.started = PROCESS_START if started is None else started
        self._out: IO[str] = sys.stdout
        self._log: IO[str] | None = None
        self._saved_fds: tuple[int, int] | None = None
        self._before_log: list[str] = []  # lines shown before the log file was known
        self.log_path: Path | None = None

    @property
    def stream(self) -> IO[str]:
        """The console itself (progress bars draw here)."""
        return self._out

    @property
    def capturing(self) -> bool:
        return self._saved_fds is not None

    def line(self, text: str) -> None:
        """One line on the console (above any progress bar) and in the log."""
        from tqdm import tqdm

        tqdm.write(text, file=self._out)
        self._out.flush()
        if self._log is not None:
            self._log.write(text + "\n")
            self._log.flush()
        else:
            self._before_log.append(text)

    def stage(self, text: str) -> None:
        """A start-up stage, stamped with the seconds since the command began."""
        self.line(f"[start {time.perf_counter() - self.started:5.1f}s] {text}")

    def open_log(self, path: Path, capture: bool) -> None:
        """Copy rl-post's lines into `path`; with `capture`, send fds 1 and 2 there too."""
        self.log_path = path
        self._log = path.open("a", buffering=1)
        self._log.writelines(line + "\n" for line in self._before_log)
        self._before_log.clear()
        if not capture or self.capturing:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.close(target)
        self._saved_fds = saved

    def close(self) -> None:
        """Give fds 1 and 2 back to the console; later output (tracebacks, the final line) shows."""
        if self._saved_fds is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            out, err = self._saved_fds
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.close(out)
            os.close(err)
            self._saved_fds = None
            self._out.close()
            self._out = sys.stdout
        if self._log is not None:
            self._log.close()
            self._log = None

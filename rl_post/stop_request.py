"""Ctrl-C / SIGTERM during training: stop at the end of the current update, not inside it.

An exception raised asynchronously at an arbitrary bytecode can leave a lock held (console, queue,
logging) or an update half applied, and the shutdown that follows then hangs or checkpoints a torn
state. The first signal only records the request; the training loop checks it between updates,
writes a final checkpoint and exits. A second signal raises KeyboardInterrupt at once for a user
who will not wait for the update to finish.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Installed for the duration of a `with` block (in the main thread; elsewhere inert)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def describe(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

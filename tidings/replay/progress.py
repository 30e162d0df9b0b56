"""A plain-text progress bar on stderr: events done, rate, ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_progress(done: int, total: int, elapsed: float, *, width: int = 24,
                    label: str = "events") -> str:
    """``[######------------------]  120/480 events  40.0/s  ETA 9s``."""
    fraction = 1.0 if total <= 0 else min(1.0, done / total)
    filled = round(fraction * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    if done >= total:
        eta = "done"
    elif rate > 0:
        eta = f"ETA {format_seconds((total - done) / rate)}"
    else:
        eta = "ETA ?"
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {done:>{len(str(total))}}/{total} {label}  {rate:.1f}/s  {eta}"


def format_seconds(seconds: float) -> str:
    """``9s``, ``2m05s``, ``1h02m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


class Progress:
    """Redraws one line (a terminal) or prints a line now and then (a log file)."""

    def __init__(self, total: int, *, stream: TextIO | None = None, label: str = "events",
                 clock: Callable[[], float] = time.monotonic, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.enabled = enabled
        self._clock = clock
        self._began = clock()
        self._shown = -1.0
        self._shown_done = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = self._clock()
        interval = 0.2 if self._tty else 2.0
        if now - self._shown >= interval:
            self._show(now)

    def finish(self) -> None:
        """Print the final state (always, so a log shows how the run ended)."""
        self._show(self._clock(), final=True)

    def _show(self, now: float, *, final: bool = False) -> None:
        if not self.enabled or (final and self._shown_done == self.done and not self._tty):
            return
        self._shown, self._shown_done = now, self.done
        line = format_progress(self.done, self.total, now - self._began, label=self.label)
        if self._tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

"""Progress of a copy: a plain-text bar on stderr (events done, rate, ETA), and the same
figures as :class:`ProgressUpdate` values for a listener (the console's progress bar)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class ProgressUpdate:
    """Where a copy stands: what the text bar shows, as numbers."""

    done: int
    total: int
    elapsed: float
    finished: bool = False

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; None before there is a rate."""
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / self.rate if self.rate > 0 else None


ProgressListener = Callable[[ProgressUpdate], None]


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


class TextBar:
    """A :data:`ProgressListener` that draws the bar: redrawn in place on a terminal
    (5 times a second), a line every 2 s on a log file, and always the final state."""

    def __init__(self, stream: TextIO | None = None, *, label: str = "events",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self._clock = clock
        self._shown = -1.0
        self._shown_done = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, update: ProgressUpdate) -> None:
        now = self._clock()
        if update.finished:
            if self._shown_done == update.done and not self._tty:
                return
        elif now - self._shown < (0.2 if self._tty else 2.0):
            return
        self._shown, self._shown_done = now, update.done
        line = format_progress(update.done, update.total, update.elapsed, label=self.label)
        if self._tty:
            self.stream.write("\r" + line + ("\n" if update.finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class Progress:
    """Counts a copy's events and tells its listeners: the text bar on ``stream``
    (unless ``enabled`` is false) and ``listener``."""

    def __init__(self, total: int, *, stream: TextIO | None = None, label: str = "events",
                 clock: Callable[[], float] = time.monotonic, enabled: bool = True,
                 listener: ProgressListener | None = None) -> None:
        self.total = total
        self.done = 0
        self._clock = clock
        self._began = clock()
        self.listeners: list[ProgressListener] = []
        if enabled:
            self.listeners.append(TextBar(stream, label=label, clock=clock))
        if listener is not None:
            self.listeners.append(listener)

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.listeners:
            update = ProgressUpdate(self.done, self.total, self._clock() - self._began)
            for listener in self.listeners:
                listener(update)

    def finish(self) -> None:
        """Tell the final state (always, so a log shows how the run ended)."""
        update = ProgressUpdate(self.done, self.total, self._clock() - self._began,
                                finished=True)
        for listener in self.listeners:
            listener(update)

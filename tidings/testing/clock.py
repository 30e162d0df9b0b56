"""A clock tests set by hand, for code that takes ``clock=`` (the scheduler)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class ManualClock:
    """Wall time in seconds that moves only when told (``set``/``advance``), or, with
    ``running=True``, at real speed from where it was set (jumps still allowed)."""

    def __init__(self, start: float | datetime | None = None, *, running: bool = False) -> None:
        self._lock = threading.Lock()
        self._running = running
        self._base_real = time.time()
        self._base = self._seconds(start) if start is not None else self._base_real

    @staticmethod
    def _seconds(moment: float | datetime) -> float:
        return moment.timestamp() if isinstance(moment, datetime) else float(moment)

    def __call__(self) -> float:
        with self._lock:
            if self._running:
                return self._base + (time.time() - self._base_real)
            return self._base

    def set(self, moment: float | datetime) -> None:
        with self._lock:
            self._base, self._base_real = self._seconds(moment), time.time()

    def advance(self, seconds: float) -> None:
        self.set(self() + seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)

    def ms(self) -> int:
        return int(self() * 1000)

"""A token bucket: at most ``rate`` events per second on average.

The bucket starts full with ``burst`` tokens (a tenth of a second's worth, at least
one), so over any run ``sent <= burst + rate * elapsed``: the average is at most
``rate`` plus ``burst / elapsed``, a tolerance that shrinks as the run gets longer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """Blocks in :meth:`take` until an event may be sent."""

    def __init__(self, rate: float, *, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else default_burst(rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def take(self, count: int = 1) -> float:
        """Wait until ``count`` tokens are available and spend them; returns seconds slept."""
        slept = 0.0
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= count - 1e-9:  # float dust must not cause endless waits
                self._tokens -= count
                return slept
            wait = max((count - self._tokens) / self.rate, 1e-6)
            self._sleep(wait)
            slept += wait


def default_burst(rate: float) -> float:
    """A tenth of a second's worth of events, at least one."""
    return max(1.0, math.floor(rate / 10))


def max_sent(rate: float, elapsed: float, burst: float | None = None) -> float:
    """The most events a bucket lets through in ``elapsed`` seconds."""
    return (burst if burst is not None else default_burst(rate)) + rate * elapsed

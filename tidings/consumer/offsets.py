"""Which offset of a partition is safe to commit when events finish out of order.

With ``concurrency: N`` events of different keys finish in any order; committing
the highest finished offset would skip an unfinished one on a crash. We commit
only up to the lowest offset still in flight.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass
class OffsetTracker:
    """In-flight and finished offsets of one partition (offsets start in increasing order)."""

    _in_flight: list[int] = field(default_factory=list)
    _finished_early: set[int] = field(default_factory=set)
    _after_finished: int | None = None

    def started(self, offset: int) -> None:
        heapq.heappush(self._in_flight, offset)

    def finished(self, offset: int) -> None:
        """The event at ``offset`` is done: handled, skipped, retried or dead-lettered."""
        self._finished_early.add(offset)
        while self._in_flight and self._in_flight[0] in self._finished_early:
            done = heapq.heappop(self._in_flight)
            self._finished_early.discard(done)
            self._after_finished = done + 1

    @property
    def committable(self) -> int | None:
        """The offset to commit: every event below it is done. None if nothing is known."""
        return self._in_flight[0] if self._in_flight else self._after_finished

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

"""Which offsets are safe to commit while batches finish out of order, or in part.

The poll loop hands each fetch to the workers in *parts*, one per worker (the fetch's
events split by key). A worker reports, now and then, how far into its part it has
got: the first ``done`` events are finished (handled, skipped or routed). A partition's
position may be committed only up to its first unfinished event in any part, so per
partition the ledger keeps, for every part still holding events of it, the offset of
that part's first unfinished one; with none left, everything dispatched is done.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TP = tuple[str, int]


@dataclass(slots=True)
class _Part:
    entries: list[tuple[TP, int]]  # (partition, offset) in the order the worker runs them
    pending: dict[TP, deque[int]]  # per partition, its offsets not finished yet, in order
    done: int
    opened_at: float


@dataclass
class InFlight:
    """Parts handed to workers and not yet finished, and what is safe to commit."""

    _parts: dict[int, _Part] = field(default_factory=dict)
    _next_id: int = 0
    #: partition -> {part id: that part's first unfinished offset of the partition}
    _firsts: dict[TP, dict[int, int]] = field(default_factory=dict)
    #: partition -> the offset after the last one dispatched
    _ends: dict[TP, int] = field(default_factory=dict)
    #: Events handed out and not finished.
    events: int = 0

    def open(self, entries: list[tuple[TP, int]], now: float) -> int:
        """Register one worker's part: its events' partitions and offsets, in order."""
        part_id = self._next_id
        self._next_id += 1
        pending: dict[TP, deque[int]] = {}
        for tp, offset in entries:
            queue = pending.get(tp)
            if queue is None:
                pending[tp] = queue = deque()
            queue.append(offset)
        firsts, ends = self._firsts, self._ends
        for tp, offsets in pending.items():
            firsts.setdefault(tp, {})[part_id] = offsets[0]
            end = offsets[-1] + 1
            if end > ends.get(tp, -1):
                ends[tp] = end
        self._parts[part_id] = _Part(entries, pending, 0, now)
        self.events += len(entries)
        return part_id

    def progress(self, part_id: int, done: int) -> None:
        """The first ``done`` events of the part are finished."""
        part = self._parts.get(part_id)
        if part is None or done <= part.done:
            return  # its partitions were revoked meanwhile, or nothing new
        done = min(done, len(part.entries))
        firsts = self._firsts
        if done == len(part.entries):  # the common case: the whole part at once
            for tp, queue in part.pending.items():
                self.events -= len(queue)
                segments = firsts.get(tp)
                if segments is not None:
                    segments.pop(part_id, None)
            del self._parts[part_id]
            return
        for index in range(part.done, done):
            tp = part.entries[index][0]
            left = part.pending.get(tp)
            if left:
                left.popleft()
                self.events -= 1
                segments = firsts.get(tp)
                if segments is not None:
                    if left:
                        segments[part_id] = left[0]
                    else:
                        segments.pop(part_id, None)
        part.done = done

    def committable(self) -> dict[TP, int]:
        """Per partition, the offset to commit: every event below it is finished."""
        return {tp: min(segments.values()) if (segments := self._firsts.get(tp)) else end
                for tp, end in self._ends.items()}

    def oldest_opened(self) -> float | None:
        """When the oldest unfinished part was handed out."""
        return min((p.opened_at for p in self._parts.values()), default=None)

    def touches(self, partitions: set[TP]) -> bool:
        """True while a part holds unfinished events of any of ``partitions``."""
        return any(self._firsts.get(tp) for tp in partitions)

    def forget(self, partitions: set[TP]) -> None:
        """Drop what is known of revoked partitions (their parts are finished or lost)."""
        for tp in partitions:
            self._firsts.pop(tp, None)
            self._ends.pop(tp, None)
        for part_id, part in list(self._parts.items()):
            for tp in partitions:
                left = part.pending.pop(tp, None)
                if left:
                    self.events -= len(left)
            if not part.pending:
                del self._parts[part_id]

    def clear(self) -> None:
        """Forget everything (the consumer is closing)."""
        self._parts.clear()
        self._firsts.clear()
        self._ends.clear()
        self.events = 0

"""Which offsets are safe to commit while batches finish out of order.

The poll loop hands each fetch to the workers as one *unit*: its events, split by key
over the workers, with the position after the last accepted event of each partition.
Workers finish their parts in any order; a partition's position may be committed only
once every unit that holds events of it, and every unit before those, is done. So the
ledger releases units in the order they were opened, and a partition's committable
position is the end of the last released unit that touched it. Book-keeping is per
unit and per partition, never per event.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TP = tuple[str, int]


@dataclass(slots=True)
class _Unit:
    ends: dict[TP, int]  # partition -> offset after its last accepted event in the unit
    events: int
    parts: int  # worker batches still running
    opened_at: float


@dataclass
class InFlight:
    """Units handed to workers and not yet finished, and what is safe to commit."""

    _units: dict[int, _Unit] = field(default_factory=dict)
    _order: deque[int] = field(default_factory=deque)
    _next_id: int = 0
    _safe: dict[TP, int] = field(default_factory=dict)
    #: Events in units not yet released (handed out, or done behind an unfinished one).
    events: int = 0

    def open(self, ends: dict[TP, int], events: int, parts: int, now: float) -> int:
        """Register a unit of ``events`` split into ``parts`` worker batches."""
        unit_id = self._next_id
        self._next_id += 1
        self._units[unit_id] = _Unit(ends, events, parts, now)
        self._order.append(unit_id)
        self.events += events
        return unit_id

    def finished(self, unit_id: int) -> None:
        """One worker batch of the unit is done (handled, skipped or routed)."""
        unit = self._units.get(unit_id)
        if unit is None:
            return  # its partitions were revoked meanwhile
        unit.parts -= 1
        order, units, safe = self._order, self._units, self._safe
        while order and units[order[0]].parts <= 0:
            done = units.pop(order.popleft())
            self.events -= done.events
            safe.update(done.ends)

    def committable(self) -> dict[TP, int]:
        """Per partition, the offset to commit: every event below it is done."""
        return dict(self._safe)

    def oldest_opened(self) -> float | None:
        """When the oldest unfinished unit was handed out."""
        return self._units[self._order[0]].opened_at if self._order else None

    def touches(self, partitions: set[TP]) -> bool:
        """True while an unreleased unit holds events of any of ``partitions``."""
        return any(not partitions.isdisjoint(unit.ends) for unit in self._units.values())

    def forget(self, partitions: set[TP]) -> None:
        """Drop what is known of revoked partitions (their units are finished or lost)."""
        for tp in partitions:
            self._safe.pop(tp, None)
        if not partitions:
            return
        for unit in self._units.values():
            for tp in partitions:
                unit.ends.pop(tp, None)

    def clear(self) -> None:
        """Forget everything (the consumer is closing)."""
        self._units.clear()
        self._order.clear()
        self._safe.clear()
        self.events = 0

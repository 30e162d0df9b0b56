"""When a recurring schedule ticks, and which ticks to emit after a pause.

A tick is an instant (epoch milliseconds, UTC). ``cron:`` schedules tick in their
``timezone`` (see :mod:`tidings.timing.cron` for daylight-saving time);
``every:`` schedules tick at whole multiples of their interval since the Unix epoch,
so every scheduler instance computes the same ticks without talking to the others.

The scheduler remembers, per schedule, the last tick it handled (``after``). Ticks in
``(after, now]`` are due. Which of them are emitted is the schedule's ``catch_up``:

* ``all``: every one, in order (a pause of three days emits three nightly reports);
* ``latest``: only the most recent one, the others are skipped (the default);
* ``none``: only a tick that is on time (at most :data:`ON_TIME` late); a tick missed
  while the scheduler was down is skipped.

A clock that jumps back leaves ``after`` in the future: nothing is due until the
clock passes it again, so no tick fires early or twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from tidings.timing.cron import CronExpression

CatchUp = Literal["all", "latest", "none"]

#: With ``catch_up: none``, how late a tick may be and still count as on time.
ON_TIME = 60_000
#: Ticks emitted per schedule per round at most (``all`` after a long pause catches up
#: over several rounds instead of building one huge transaction).
ROUND_LIMIT = 200
#: Ticks looked at per schedule per round when skipping (``latest``/``none``): a schedule
#: that ticks every second and was down for a month is not walked tick by tick.
_WALK_LIMIT = 10_000


class Recurrence(Protocol):
    def next_after(self, after_ms: int) -> int | None:
        """The first tick strictly after ``after_ms``, or None if there is none."""
        ...


@dataclass(frozen=True)
class Every:
    """Ticks at whole multiples of ``interval_ms`` since the epoch."""

    interval_ms: int

    def next_after(self, after_ms: int) -> int:
        return (after_ms // self.interval_ms + 1) * self.interval_ms

    def last_at_or_before(self, now_ms: int) -> int:
        return now_ms // self.interval_ms * self.interval_ms


@dataclass(frozen=True)
class Cron:
    """A cron expression in a time zone."""

    expression: CronExpression
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> Cron:
        return cls(CronExpression.parse(text), ZoneInfo(timezone))

    def next_after(self, after_ms: int) -> int | None:
        found = self.expression.next_after(datetime.fromtimestamp(after_ms / 1000, UTC),
                                           self.zone)
        return None if found is None else int(found.timestamp() * 1000)


@dataclass
class DueTicks:
    """What to do for one schedule in one round."""

    emit: list[int] = field(default_factory=list)
    skipped: int = 0
    #: The new ``after``: the last tick emitted or skipped (unchanged when nothing was due).
    after: int = 0


def due_ticks(recurrence: Recurrence, after_ms: int, now_ms: int, catch_up: CatchUp,
              *, limit: int = ROUND_LIMIT) -> DueTicks:
    """The ticks in ``(after_ms, now_ms]`` to emit now, per ``catch_up`` (see module)."""
    result = DueTicks(after=after_ms)
    if now_ms <= after_ms:
        return result
    if isinstance(recurrence, Every) and catch_up != "all":
        last = recurrence.last_at_or_before(now_ms)
        if last <= after_ms:
            return result
        # Ticks in (after, last]: multiples of the interval up to last, minus up to after.
        missed = last // recurrence.interval_ms - after_ms // recurrence.interval_ms
        return _keep_last(last, int(missed), now_ms, catch_up)
    ticks: list[int] = []
    cursor = after_ms
    walk = limit if catch_up == "all" else _WALK_LIMIT
    while len(ticks) < walk:
        tick = recurrence.next_after(cursor)
        if tick is None or tick > now_ms:
            break
        ticks.append(tick)
        cursor = tick
    if not ticks:
        return result
    if catch_up == "all":
        result.emit = ticks
        result.after = ticks[-1]
        return result
    if len(ticks) == walk:  # more than we walk: the last tick is found by stepping back
        cursor = _last_tick(recurrence, ticks[-1], now_ms)
        return _keep_last(cursor, walk + 1, now_ms, catch_up)
    return _keep_last(ticks[-1], len(ticks), now_ms, catch_up)


def _keep_last(last: int, count: int, now_ms: int, catch_up: CatchUp) -> DueTicks:
    if catch_up == "none" and now_ms - last > ON_TIME:
        return DueTicks(emit=[], skipped=count, after=last)
    return DueTicks(emit=[last], skipped=count - 1, after=last)


def _last_tick(recurrence: Recurrence, known: int, now_ms: int) -> int:
    """The last tick at or before ``now_ms``, from a tick ``known`` before it: look at
    ever shorter windows before ``now_ms`` for one."""
    span = 1000
    while now_ms - span > known:
        start = now_ms - span
        tick = recurrence.next_after(start)
        if tick is not None and tick <= now_ms:
            last = tick
            while True:
                following = recurrence.next_after(last)
                if following is None or following > now_ms:
                    return last
                last = following
        span *= 4
    last = known
    while True:
        following = recurrence.next_after(last)
        if following is None or following > now_ms:
            return last
        last = following

"""The scheduler's topics, named in one place (their headers are in tidings.headers).

For a topology named ``shop`` (or ``scheduling.topic: shop.schedule``):

* ``shop.schedule``: where publishers send delayed events (keyed by schedule id);
* ``shop.schedule.wait.<delay>``: the waiting tiers an event hops through until it
  is due (a partition is paused until its head is due, never slept on);
* ``shop.schedule.cancelled``: cancellations, compacted, keyed by schedule id;
* ``shop.schedule.state``: the last tick of each recurring schedule, compacted.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.durations import Duration, parse_duration

#: The waiting tiers, shortest first. An event waits in the longest tier that does not
#: overshoot its time, then the next, so a 30-day delay takes a few dozen hops. Within a
#: tier every event waits the same time, so a partition's heads fall due in order and no
#: event waits behind another; the last wait (under 100 ms to go) overshoots by at most
#: the shortest tier.
TIERS: tuple[Duration, ...] = tuple(parse_duration(text) for text in (
    "100ms", "250ms", "500ms", "1s", "5s", "30s", "2m", "10m", "1h", "6h", "1d"))

#: Retention of a waiting topic beyond its delay: how long a scheduler may be down
#: before waiting events expire.
SLACK_MS = 7 * 86_400_000


def base_name(topology_name: str, declared: str | None) -> str:
    return declared or f"{topology_name}.schedule"


@dataclass(frozen=True)
class SchedulingTopics:
    """The names of one topology's scheduling topics."""

    base: str

    @property
    def intake(self) -> str:
        return self.base

    def tier(self, delay: Duration) -> str:
        return f"{self.base}.wait.{delay.label}"

    @property
    def tiers(self) -> list[tuple[Duration, str]]:
        return [(delay, self.tier(delay)) for delay in TIERS]

    @property
    def cancelled(self) -> str:
        return f"{self.base}.cancelled"

    @property
    def state(self) -> str:
        return f"{self.base}.state"

    @property
    def group(self) -> str:
        """The scheduler's consumer group."""
        return f"{self.base}.scheduler"

    @property
    def waiting(self) -> list[str]:
        """The topics scheduled events wait in: the intake and every tier."""
        return [self.intake, *(topic for _, topic in self.tiers)]


def tier_for(remaining_ms: int) -> Duration:
    """The longest tier not longer than ``remaining_ms``; the shortest when even that
    is longer (the event is then up to that much late, never early)."""
    chosen = TIERS[0]
    for delay in TIERS:
        if delay.millis <= remaining_ms:
            chosen = delay
    return chosen


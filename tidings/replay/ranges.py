"""Parsing ``--from`` / ``--to``: ISO timestamps, durations ago, or per-partition offsets.

A range is ``[from, to)``. A bound is one of:

* an ISO 8601 moment: ``2026-03-14T15:00:00Z``, ``2026-03-14T15:00`` (UTC when no
  zone is given), ``2026-03-14``;
* a duration before now: ``-2h``, ``-30m``, ``-1d`` (``now`` is also accepted);
* per-partition offsets: ``0:120,1:80,2:0``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tidings.durations import parse_duration
from tidings.replay.cluster import ReplayError

_OFFSETS = re.compile(r"^\s*\d+\s*:\s*\d+\s*(,\s*\d+\s*:\s*\d+\s*)*$")


@dataclass(frozen=True)
class Bound:
    """One end of a range: a moment (epoch ms) or explicit offsets per partition."""

    text: str
    timestamp_ms: int | None = None
    offsets: Mapping[int, int] = field(default_factory=dict)

    @property
    def is_time(self) -> bool:
        return self.timestamp_ms is not None

    def describe(self) -> str:
        """The bound as the plan prints it."""
        if self.timestamp_ms is None:
            return self.text
        moment = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
        shown = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
        return shown if shown == self.text else f"{shown} ({self.text})"


def parse_bound(text: str, option: str, *, now: datetime | None = None) -> Bound:
    """Parse one bound; ``option`` (``--from``) names it in the error message."""
    raw = text.strip()
    now = now or datetime.now(UTC)
    if raw == "now":
        return Bound(text, timestamp_ms=_ms(now))
    if raw.startswith("-"):
        try:
            ago = parse_duration(raw[1:])
        except ValueError:
            raise ReplayError(f"{option} {text!r}: a duration before now is written "
                              "like -2h, -30m or -1d") from None
        return Bound(text, timestamp_ms=_ms(now) - ago.millis)
    if _OFFSETS.match(raw):
        offsets: dict[int, int] = {}
        for pair in raw.split(","):
            partition, offset = (int(part) for part in pair.split(":"))
            if partition in offsets:
                raise ReplayError(f"{option} {text!r}: partition {partition} is named twice")
            offsets[partition] = offset
        return Bound(text, offsets=offsets)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ReplayError(
            f"{option} {text!r} is not a time, a duration or offsets; write e.g. "
            "2026-03-14T15:00:00Z, -2h, or 0:120,1:80 (partition:offset)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Bound(text, timestamp_ms=_ms(moment))


def check_order(start: Bound, end: Bound | None) -> None:
    """Refuse ``--from`` after ``--to`` when both are moments, or both name a partition."""
    if end is None:
        return
    if start.timestamp_ms is not None and end.timestamp_ms is not None:
        if start.timestamp_ms > end.timestamp_ms:
            raise ReplayError(f"--from {start.describe()} is after --to {end.describe()}")
        return
    for partition, offset in start.offsets.items():
        stop = end.offsets.get(partition)
        if stop is not None and offset > stop:
            raise ReplayError(f"--from {start.text} is after --to {end.text} "
                              f"on partition {partition} ({offset} > {stop})")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)

"""A scheduled event as the scheduler reads it: headers in, headers out.

See :mod:`tidings.producer.scheduled` for how publishers address an event to the
scheduler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tidings import headers as h

RawHeaders = Iterable[tuple[str, "str | bytes | None"]]


def cancelled_at(value: bytes | None) -> int | None:
    """When a cancellation record was made; None for a tombstone or something else."""
    if not value:
        return None
    try:
        found = json.loads(value)
        return int(found["cancelled_at"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Entry:
    """What the scheduler reads from a scheduled event's headers."""

    schedule_id: str
    deliver_at: int
    scheduled_at: int
    target_topic: str
    target_key: bytes | None
    not_before: int | None
    event_id: str
    event_type: str


def read_entry(raw: RawHeaders | Mapping[str, str | bytes | None] | None) -> Entry | None:
    """The entry a scheduling topic's message describes; None when it is not one."""
    pairs = _pairs(raw)
    found: dict[str, bytes] = {}
    for name, value in pairs:
        found[name] = value.encode() if isinstance(value, str) else value or b""
    try:
        not_before = found.get(h.NOT_BEFORE)
        return Entry(
            schedule_id=found[h.SCHEDULE_ID].decode(),
            deliver_at=int(found[h.DELIVER_AT]),
            scheduled_at=int(found.get(h.SCHEDULED_AT, b"0")),
            target_topic=found[h.TARGET_TOPIC].decode(),
            target_key=found.get(h.TARGET_KEY),
            not_before=int(not_before) if not_before else None,
            event_id=found.get(h.EVENT_ID, b"").decode(),
            event_type=found.get(h.EVENT_TYPE, b"unknown").decode(),
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def _pairs(raw: RawHeaders | Mapping[str, str | bytes | None] | None
           ) -> Iterable[tuple[str, str | bytes | None]]:
    return raw.items() if isinstance(raw, Mapping) else raw or ()


def delivery_headers(raw: RawHeaders | Mapping[str, str | bytes | None] | None
                     ) -> list[tuple[str, bytes]]:
    """The headers an event is delivered with: its own, plus ``schedule-id`` and
    ``deliver-at``; the scheduler's internal ones removed."""
    return [(name, value.encode() if isinstance(value, str) else value or b"")
            for name, value in _pairs(raw) if name not in h.SCHEDULER_INTERNAL]


def hop_headers(raw: RawHeaders | Mapping[str, str | bytes | None] | None,
                not_before: int) -> list[tuple[str, bytes]]:
    """The headers of an entry moved to a waiting tier, due there at ``not_before``."""
    kept = [(name, value.encode() if isinstance(value, str) else value or b"")
            for name, value in _pairs(raw) if name != h.NOT_BEFORE]
    kept.append((h.NOT_BEFORE, str(not_before).encode()))
    return kept

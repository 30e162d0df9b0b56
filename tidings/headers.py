"""Names and values of the headers every Tidings event carries on the wire."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime

EVENT_ID = "event-id"
EVENT_TYPE = "event-type"
SCHEMA = "schema"
OCCURRED_AT = "occurred-at"
PRODUCER = "producer"
TRACEPARENT = "traceparent"

# Added when an event is retried or dead-lettered.
ATTEMPT = "attempt"
ORIGINAL_TOPIC = "original-topic"
ORIGINAL_PARTITION = "original-partition"
ORIGINAL_OFFSET = "original-offset"
ERROR_CLASS = "error-class"
ERROR_MESSAGE = "error-message"
FAILED_AT = "failed-at"
NOT_BEFORE = "not-before"

# Request-reply: a request names where its reply goes and how to match it.
CORRELATION_ID = "correlation-id"
REPLY_TO = "reply-to"  # "<topic>:<partition>" of the requesting instance

# Headers an event carries while it is scheduled.
SCHEDULE_ID = "schedule-id"
DELIVER_AT = "deliver-at"          # epoch ms: when it is due
SCHEDULED_AT = "scheduled-at"      # epoch ms: when it was scheduled (cancellations apply
                                   # to schedules made before them)
TARGET_TOPIC = "target-topic"      # the real topic it is delivered to
TARGET_KEY = "target-key"          # the real key (absent: no key)
# Headers of a recurring tick.
SCHEDULE = "schedule"
TICK = "tick"

#: Headers only the scheduler needs; they are removed on delivery.
SCHEDULER_INTERNAL = frozenset({TARGET_TOPIC, TARGET_KEY, SCHEDULED_AT, NOT_BEFORE})

Headers = list[tuple[str, bytes]]


def new_event_id() -> str:
    return str(uuid.uuid4())


def new_traceparent() -> str:
    """A W3C trace context for an event that starts a trace (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. ``2026-11-23T01:02:03.456Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_headers(
    *,
    event_id: str,
    event_type: str,
    schema: str,
    producer: str,
    occurred_at: datetime | None = None,
    traceparent: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Headers:
    """The standard headers, in a stable order, encoded as UTF-8."""
    pairs = [
        (EVENT_ID, event_id),
        (EVENT_TYPE, event_type),
        (SCHEMA, schema),
        (OCCURRED_AT, format_timestamp(occurred_at or datetime.now(UTC))),
        (PRODUCER, producer),
        (TRACEPARENT, traceparent or new_traceparent()),
    ]
    pairs.extend((extra or {}).items())
    return [(name, value.encode()) for name, value in pairs]


def header_dict(
    headers: Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> dict[str, str]:
    """Headers as text; the last value wins for a repeated name."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    result: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, bytes):
            result[name] = value.decode("utf-8", "replace")
        else:
            result[name] = value or ""
    return result


class HeaderView(Mapping[str, str]):
    """A record's headers as text, decoded on first use; the last value wins for a
    repeated name. The consumer hands these out instead of decoding every header of
    every event up front."""

    __slots__ = ("_decoded", "_raw")

    def __init__(
        self,
        raw: Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
    ) -> None:
        # A list (what confluent-kafka returns) is by far the common case: test it first.
        self._raw: Iterable[tuple[str, str | bytes | None]] = \
            raw if type(raw) is list else \
            raw.items() if isinstance(raw, Mapping) else raw or ()
        self._decoded: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = header_dict(self._raw)
        return self._decoded

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if self._decoded is not None:
            return self._decoded.get(name, default)
        found: str | bytes | None = None
        seen = False
        for key, value in self._raw:
            if key == name:
                found, seen = value, True
        if not seen:
            return default
        return found.decode("utf-8", "replace") if isinstance(found, bytes) else found or ""

    def __getitem__(self, name: str) -> str:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"HeaderView({self._all()!r})"

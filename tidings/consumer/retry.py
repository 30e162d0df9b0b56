"""Where a failed event goes next: the group's next retry tier, or its dead-letter topic.

Tiers are per group (``<topic>.<group>.retry.<delay>``), so a retry for inventory
never redelivers to email. An event carries its ``attempt`` number and the
``not-before`` time (epoch ms) before which the tier's consumer must not handle it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tidings import headers as h
from tidings import tracing
from tidings.durations import Duration
from tidings.topology.topology import dlq_topic_name, retry_topic_name

MAX_ERROR_MESSAGE = 1000


class RouteKind(StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"
    DROP = "drop"  # no DLQ declared: logged and counted, nothing else to do


@dataclass(frozen=True)
class FailureRoute:
    kind: RouteKind
    topic: str | None
    next_attempt: int
    not_before_ms: int | None = None
    tier: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """The retry tiers and DLQ of one consumer group."""

    group: str
    tiers: Sequence[Duration]
    dlq: bool

    def route(self, source_topic: str, attempt: int, *, retryable: bool,
              now_ms: int | None = None) -> FailureRoute:
        """Where an event of ``source_topic`` goes after its ``attempt``-th try failed."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        tier_index = attempt - 1
        if retryable and 0 <= tier_index < len(self.tiers):
            delay = self.tiers[tier_index]
            return FailureRoute(
                RouteKind.RETRY, retry_topic_name(source_topic, self.group, delay),
                next_attempt=attempt + 1, not_before_ms=now_ms + delay.millis, tier=delay.label,
            )
        # On a dead letter, ``attempt`` records how many attempts were made.
        if self.dlq:
            return FailureRoute(RouteKind.DEAD_LETTER, dlq_topic_name(source_topic, self.group),
                                next_attempt=attempt)
        return FailureRoute(RouteKind.DROP, None, next_attempt=attempt)


def failure_headers(
    original: Mapping[str, str],
    *,
    route: FailureRoute,
    topic: str,
    partition: int,
    offset: int,
    error: BaseException,
    now: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """The event's headers plus the retry/DLQ ones; the first failure's coordinates stay.

    The copy starts a trace of its own, linked to the first publish's (see
    :func:`tidings.tracing.copy_trace`)."""
    now = now or datetime.now(UTC)
    headers = dict(original)
    headers.setdefault(h.ORIGINAL_TOPIC, topic)
    headers.setdefault(h.ORIGINAL_PARTITION, str(partition))
    headers.setdefault(h.ORIGINAL_OFFSET, str(offset))
    headers[h.ATTEMPT] = str(route.next_attempt)
    headers[h.ERROR_CLASS] = error_class(error)
    headers[h.ERROR_MESSAGE] = (str(error) or repr(error))[:MAX_ERROR_MESSAGE]
    headers[h.FAILED_AT] = h.format_timestamp(now)
    if route.not_before_ms is not None:
        headers[h.NOT_BEFORE] = str(route.not_before_ms)
    else:
        headers.pop(h.NOT_BEFORE, None)
    if route.topic is not None:
        tracing.copy_trace(headers, route.topic)
    return [(name, value.encode()) for name, value in headers.items()]


def error_class(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") \
        else f"{module}.{kind.__qualname__}"


def not_before(headers: Mapping[str, str]) -> int | None:
    raw = headers.get(h.NOT_BEFORE)
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def attempt_of(headers: Mapping[str, str]) -> int:
    try:
        return max(1, int(headers.get(h.ATTEMPT, "1")))
    except ValueError:
        return 1

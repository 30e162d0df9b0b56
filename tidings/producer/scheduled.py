"""Delayed publishing, producer side: an event addressed to the scheduler, and
cancellations.

Scheduling an event changes only where it goes and adds headers: the value is the
event's own encoded bytes and its headers (``event-id`` first) stay as they are, so
the event the scheduler delivers later (see :mod:`tidings.scheduling`) is the one
that was published, and consumers' idempotency covers a delivery made twice.

On the scheduling topics the key is the schedule id (a cancellation for that id is
keyed the same way); the event's real topic and key travel in headers.
``Publisher.publish(event, delay=...)``, ``Outbox.stage(..., delay=...)`` and
``ctx.publish(..., delay=...)`` all come here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tidings import headers as h
from tidings.errors import TidingsError
from tidings.producer.prepare import PreparedEvent
from tidings.producer.reliable import Delivery, DeliveryFailed
from tidings.topology.scheduling import SchedulingTopics

if TYPE_CHECKING:
    from tidings.codec.events import Event
    from tidings.producer.publisher import Publisher
    from tidings.topology import Topology


class ScheduleRefused(TidingsError):
    """A delayed publish that cannot be scheduled (no scheduling declared, bad time)."""


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def due_time(*, deliver_at: datetime | None, delay: timedelta | None, now: int,
             max_delay_ms: int) -> int:
    """When an event asked for ``deliver_at=`` or ``delay=`` is due, in epoch ms."""
    if deliver_at is not None and delay is not None:
        raise ScheduleRefused("pass deliver_at= or delay=, not both")
    if deliver_at is not None:
        if deliver_at.tzinfo is None:
            raise ScheduleRefused(f"deliver_at={deliver_at.isoformat()} has no time zone; "
                                  "pass an aware datetime (e.g. datetime.now(UTC) + ...)")
        due = int(deliver_at.timestamp() * 1000)
    elif delay is not None:
        if delay < timedelta(0):
            raise ScheduleRefused(f"delay={delay} is negative")
        due = now + int(delay.total_seconds() * 1000)
    else:
        due = now
    if due - now > max_delay_ms:
        raise ScheduleRefused(
            f"due in {(due - now) / 86_400_000:.1f} days, more than scheduling.max_delay "
            f"({max_delay_ms / 86_400_000:g} days) allows; raise max_delay in topology.yaml")
    return due


def scheduling_of(topology: Topology) -> SchedulingTopics:
    topics = topology.scheduling_topics
    if topics is None:
        raise ScheduleRefused(
            f"{topology.path.name} declares no scheduling; add a `scheduling:` section "
            "(e.g. `scheduling: {max_delay: 30d}`) and run `tidings topology apply`")
    return topics


def schedule(prepared: PreparedEvent, topology: Topology, *, deliver_at: datetime | None,
             delay: timedelta | None, schedule_id: str | None,
             now: int | None = None) -> tuple[PreparedEvent, str, int]:
    """``prepared`` addressed to the scheduler: ``(scheduled, schedule id, due ms)``.

    The schedule id is ``schedule_id`` when given (a business key such as
    ``reminder-<order id>`` lets a later cancel name it), else the event id."""
    topics = scheduling_of(topology)
    now = now_ms() if now is None else now
    due = due_time(deliver_at=deliver_at, delay=delay, now=now,
                   max_delay_ms=topology.scheduling_spec.max_delay.millis)
    sid = schedule_id or prepared.event_id
    if not sid or len(sid) > 512:
        raise ScheduleRefused("a schedule id must be 1 to 512 characters")
    extra = [(h.SCHEDULE_ID, sid), (h.DELIVER_AT, str(due)),
             (h.SCHEDULED_AT, str(now)), (h.TARGET_TOPIC, prepared.topic)]
    headers = [*prepared.headers, *((k, v.encode()) for k, v in extra)]
    if prepared.key is not None:
        headers.append((h.TARGET_KEY, prepared.key))
    scheduled = replace(prepared, topic=topics.intake, key=sid.encode(), headers=headers)
    return scheduled, sid, due


def cancellation(schedule_id: str, *, by: str, now: int | None = None) -> bytes:
    """The value of a cancellation record (keyed by the schedule id)."""
    return json.dumps({"cancelled_at": now_ms() if now is None else now, "by": by}).encode()


_EPOCH = datetime.fromtimestamp(0, UTC)
#: The options of ``publish`` that make it a delayed publish.
OPTIONS = frozenset({"deliver_at", "delay", "schedule_id"})


@dataclass(frozen=True)
class ScheduledDelivery(Delivery):
    """Where the broker stored a scheduled event (on the scheduling topic), its schedule
    id (for :meth:`Publisher.cancel`) and when it is due."""

    schedule_id: str = ""
    deliver_at: datetime = _EPOCH


def publish_later(publisher: Publisher, event: Event, *, deliver_at: datetime | None = None,
                  delay: timedelta | None = None, schedule_id: str | None = None,
                  **prepare: Any) -> ScheduledDelivery:
    """Send ``event`` to the scheduler, to be delivered to its topic when due."""
    prepared = publisher.prepare(event, **prepare)
    scheduled, sid, due = schedule(prepared, publisher.topology,
                                            deliver_at=deliver_at, delay=delay,
                                            schedule_id=schedule_id)
    delivery = _wait(publisher, scheduled)
    return ScheduledDelivery(delivery.topic, delivery.partition, delivery.offset,
                             prepared.event_id, sid,
                             datetime.fromtimestamp(due / 1000, UTC))


def cancel(publisher: Publisher, schedule_id: str) -> Delivery:
    """Cancel every event scheduled under ``schedule_id`` before now that is not yet
    delivered. Returns once the broker has the cancellation."""
    record = cancellation_event(publisher.topology, schedule_id, by=publisher.service)
    return _wait(publisher, record)


def cancellation_event(topology: Any, schedule_id: str, *, by: str) -> PreparedEvent:
    """A cancellation as the outbox and the publisher send it."""
    topics = scheduling_of(topology)
    return PreparedEvent(
        event_id=f"cancel-{uuid.uuid4()}", event_type="schedule.cancelled",
        topic=topics.cancelled, key=schedule_id.encode(),
        value=cancellation(schedule_id, by=by), headers=[])


def _wait(publisher: Publisher, prepared: PreparedEvent) -> Delivery:
    future = publisher.send_prepared(prepared)
    try:
        return future.result(timeout=publisher.delivery_timeout + 5)
    except TimeoutError:
        raise DeliveryFailed(f"no delivery report within {publisher.delivery_timeout:g}s "
                             f"for {prepared.topic}") from None

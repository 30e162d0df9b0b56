"""One recurring tick as an event: its fields, its event id, its headers.

A tick's ``event-id`` is derived from (topology, schedule, tick time), so every
scheduler instance, and a scheduler that emits a tick again after a crash, produce
the same id: consumers' idempotency makes a double emission a no-op.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tidings import headers as h
from tidings.imports import import_reference
from tidings.timing.placeholders import tick_data
from tidings.timing.recurrence import Cron, Every, Recurrence

if TYPE_CHECKING:
    from tidings.producer.prepare import EventPreparer, PreparedEvent
    from tidings.topology import Topology
    from tidings.topology.model import ScheduleSpec

_NAMESPACE = uuid.UUID("6f0f5f3e-2a8b-4b8e-9a51-7d6c1c0d2a10")


def recurrence_of(spec: ScheduleSpec) -> Recurrence:
    if spec.every is not None:
        return Every(spec.every.millis)
    assert spec.cron is not None
    return Cron.parse(spec.cron, spec.timezone)


def tick_event_id(topology_name: str, schedule: str, tick_ms: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{topology_name}/{schedule}/{tick_ms}"))


@dataclass(frozen=True)
class _RecordEvent:
    """An event without a model: its Avro record as written in topology.yaml."""

    record: dict[str, Any]

    def to_avro(self) -> dict[str, Any]:
        return self.record


def tick_event(topology: Topology, schedule: str, preparer: EventPreparer,
               tick_ms: int) -> PreparedEvent:
    """The prepared event of ``schedule``'s tick at ``tick_ms``."""
    spec = topology.schedules[schedule]
    data = tick_data(spec.data, tick_ms, spec.timezone)
    reference = topology.events[spec.event].model
    event: Any
    if reference:
        model = import_reference(reference, topology.root)
        event = model.model_validate(data)
    else:
        kind = type(f"Tick_{spec.event}", (_RecordEvent,), {"event_type": spec.event})
        event = kind(data)
    moment = datetime.fromtimestamp(tick_ms / 1000, UTC)
    prepared = preparer.prepare(event, event_id=tick_event_id(topology.name, schedule,
                                                              tick_ms),
                                occurred_at=moment)
    extra = [(h.SCHEDULE, schedule.encode()),
             (h.TICK, h.format_timestamp(moment).encode())]
    return replace(prepared, headers=[*prepared.headers, *extra])

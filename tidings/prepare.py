"""Turn a typed event into what goes on the wire: topic, key, Avro bytes, headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from tidings import headers as h
from tidings.errors import TidingsError
from tidings.topology import Topology

if TYPE_CHECKING:
    from tidings.codec import SchemaCatalogue
    from tidings.events import Event


class PublishRefused(TidingsError):
    """The service may not publish this event, or the event is not valid to publish."""


class EventCodec(Protocol):
    def encode(self, event: str, record: dict[str, Any]) -> bytes: ...


@dataclass(frozen=True)
class PreparedEvent:
    """An event encoded for the wire, before it is sent (the outbox stores these)."""

    event_id: str
    event_type: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class EventPreparer:
    """Validates that a service may publish an event and encodes it for the wire."""

    def __init__(
        self,
        topology: Topology,
        service: str,
        *,
        catalogue: SchemaCatalogue | None = None,
        codec: EventCodec | None = None,
    ) -> None:
        if service not in topology.producers:
            known = ", ".join(sorted(topology.producers)) or "none"
            raise PublishRefused(
                f"{service!r} is not a producer in {topology.path.name} (declared: {known})"
            )
        from tidings.codec import SchemaCatalogue, codec_for

        self.topology = topology
        self.service = service
        self.allowed = frozenset(topology.producers[service].publishes)
        self.catalogue = catalogue or SchemaCatalogue.from_topology(topology)
        self.codec: EventCodec = codec or codec_for(topology, self.catalogue)

    def prepare(
        self,
        event: Event,
        *,
        event_id: str | None = None,
        traceparent: str | None = None,
        occurred_at: datetime | None = None,
    ) -> PreparedEvent:
        """Validate, encode and address ``event`` without sending it."""
        event_type = type(event).event_type
        if event_type not in self.allowed:
            raise PublishRefused(
                f"{self.service} is not declared to publish {event_type!r} "
                f"(it publishes: {', '.join(sorted(self.allowed))}); add it under "
                f"producers.{self.service}.publishes in {self.topology.path.name}"
            )
        spec = self.topology.events[event_type]
        record = event.to_avro()
        key = str(record[spec.key]).encode() if spec.key else None
        event_id = event_id or h.new_event_id()
        writer = self.catalogue.writer(event_type)
        return PreparedEvent(
            event_id=event_id,
            event_type=event_type,
            topic=spec.topic,
            key=key,
            value=self.codec.encode(event_type, record),
            headers=h.event_headers(
                event_id=event_id, event_type=event_type, schema=writer.fingerprint.hex(),
                producer=self.service, occurred_at=occurred_at, traceparent=traceparent,
            ),
        )

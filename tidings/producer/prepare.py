"""Turn a typed event into what goes on the wire: topic, key, Avro bytes, headers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from tidings import headers as h
from tidings.errors import TidingsError
from tidings.topology import Topology

if TYPE_CHECKING:
    from tidings.codec import SchemaCatalogue
    from tidings.codec.events import Event


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
        from tidings.codec import SchemaCatalogue

        self.topology = topology
        self.service = service
        self.allowed = frozenset(topology.producers[service].publishes)
        declared = topology.declared_events()
        self.catalogue = catalogue or SchemaCatalogue.from_events(declared)
        self.codec: EventCodec = codec or topology.codec(self.catalogue)
        # Per event type, what every prepare() of it needs: (topic, key field, schema).
        self._routes: dict[str, tuple[str, str | None, str]] = {}

    def _route(self, event_type: str) -> tuple[str, str | None, str]:
        route = self._routes.get(event_type)
        if route is None:
            if event_type not in self.allowed:
                raise PublishRefused(
                    f"{self.service} is not declared to publish {event_type!r} "
                    f"(it publishes: {', '.join(sorted(self.allowed))}); add it under "
                    f"producers.{self.service}.publishes in {self.topology.path.name}"
                )
            from tidings.codec import schema_header

            spec = self.topology.events[event_type]
            # The writer's registry id in registry mode, else its fingerprint.
            route = (spec.topic, spec.key or None,
                     schema_header(self.codec, self.catalogue, event_type))
            self._routes[event_type] = route
        return route

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
        topic, key_field, schema = self._route(event_type)
        record = event.to_avro()
        key = str(record[key_field]).encode() if key_field else None
        if not event_id or not traceparent:
            new_id, new_trace = new_ids()
            event_id = event_id or new_id
            traceparent = traceparent or new_trace
        return PreparedEvent(
            event_id=event_id,
            event_type=event_type,
            topic=topic,
            key=key,
            value=self.codec.encode(event_type, record),
            headers=h.event_headers(
                event_id=event_id, event_type=event_type, schema=schema,
                producer=self.service, occurred_at=occurred_at, traceparent=traceparent,
            ),
        )


def new_ids() -> tuple[str, str]:
    """A fresh event id and traceparent, as :func:`tidings.headers.new_event_id` and
    :func:`tidings.headers.new_traceparent` make them (a random UUID 4; a W3C trace
    context, version 00, sampled), from one call to the OS's random source."""
    raw = os.urandom(40)
    uid = bytearray(raw[:16])
    uid[6] = (uid[6] & 0x0F) | 0x40  # version 4
    uid[8] = (uid[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = uid.hex()
    return (f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}",
            f"00-{raw[16:32].hex()}-{raw[32:].hex()}-01")

"""Events on the wire: Avro bodies behind a header that names the writer schema.

Two wire formats, one interface (:class:`Codec`): Avro single-object encoding
needs nothing but the schema files; the Confluent format is used when the
topology names a schema registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tidings.codec.catalogue import CatalogueError, DeclaredEvent, SchemaCatalogue, SchemaVersion
from tidings.codec.decoded import Decoded
from tidings.codec.errors import (
    CorruptPayload,
    DecodeError,
    EncodeError,
    RegistryUnavailable,
    SchemaRejected,
    TruncatedPayload,
    UnexpectedEvent,
    UnknownSchema,
    WrongMagic,
)
from tidings.codec.fingerprint import fingerprint
from tidings.codec.registry import RegistryCodec
from tidings.codec.single_object import SingleObjectCodec


class Codec(Protocol):
    """Turns records into bytes for one event type, and any payload back into a record."""

    def encode(self, event: str, record: Mapping[str, Any]) -> bytes:
        """``record`` written with the event's current schema version."""
        ...

    def decode(self, payload: bytes, reader: SchemaVersion | None = None) -> Decoded:
        """The payload read as ``reader`` (default: as written); raises
        :class:`DecodeError` for bytes that are not a valid event."""
        ...


def codec_for(declared: Sequence[DeclaredEvent], registry_url: str | None = None,
              catalogue: SchemaCatalogue | None = None, *,
              auto_register: bool = False) -> Codec:
    """The codec for the declared events: the registry's when ``registry_url`` (the
    topology's ``cluster.schema_registry_url``) is set, single-object encoding otherwise.

    ``auto_register`` registers a writer schema on its first use; without it the schema
    must have been registered (``tidings schemas register``)."""
    if catalogue is None:
        catalogue = SchemaCatalogue.from_events(declared)
    url = registry_url
    if url:
        topics = {item.name: item.topic for item in declared}
        # Our topics carry several event types (orders: created and cancelled), so one
        # subject per topic would make the registry check one event against another.
        return RegistryCodec.from_url(catalogue, url, topics=topics,
                                      subject_strategy="topic_record",
                                      auto_register=auto_register)
    return SingleObjectCodec(catalogue)


def schema_header(codec: object, catalogue: SchemaCatalogue, event: str) -> str:
    """The ``schema`` header of ``event``: its writer's registry id where ``codec`` has a
    registry, else the writer's CRC-64-AVRO fingerprint in hex."""
    header = getattr(codec, "schema_header", None)
    if callable(header):
        return str(header(event))
    return catalogue.writer(event).fingerprint.hex()


__all__ = [
    "CatalogueError",
    "Codec",
    "CorruptPayload",
    "DeclaredEvent",
    "DecodeError",
    "Decoded",
    "EncodeError",
    "RegistryCodec",
    "RegistryUnavailable",
    "SchemaCatalogue",
    "SchemaRejected",
    "SchemaVersion",
    "SingleObjectCodec",
    "TruncatedPayload",
    "UnexpectedEvent",
    "UnknownSchema",
    "WrongMagic",
    "codec_for",
    "fingerprint",
    "schema_header",
]

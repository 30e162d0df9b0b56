"""Avro single-object encoding: ``0xC3 0x01``, the writer's fingerprint, the body.

It needs no server: a reader finds the writer schema by its fingerprint in the
catalogue, then reads the body into its own schema version.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any

from tidings.codec._avro_body import decode_body, write_body
from tidings.codec.catalogue import SchemaCatalogue, SchemaVersion
from tidings.codec.decoded import Decoded
from tidings.codec.errors import (
    EncodeError,
    TruncatedPayload,
    UnknownSchema,
    WrongMagic,
)
from tidings.codec.fingerprint import FINGERPRINT_SIZE

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE


class SingleObjectCodec:
    """Encode and decode events in Avro single-object encoding."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self.catalogue = catalogue
        # The header of each writer is fixed; build it once, not per event.
        self._headers: dict[str, tuple[SchemaVersion, bytes]] = {
            event: (writer, MAGIC + writer.fingerprint)
            for event in catalogue.events
            for writer in (catalogue.writer(event),)
        }

    def encode(self, event: str, record: Mapping[str, Any]) -> bytes:
        """``record`` (fastavro-ready: see :meth:`tidings.codec.events.Event.to_avro`) as bytes,
        written with the event's current schema version."""
        try:
            writer, header = self._headers[event]
        except KeyError:
            raise EncodeError(f"unknown event {event!r}") from None
        out = BytesIO()
        out.write(header)
        write_body(out, writer, record)
        return out.getvalue()

    def schema_header(self, event: str) -> str:
        """The ``schema`` header value: the writer's fingerprint, in hex."""
        try:
            return self._headers[event][0].fingerprint.hex()
        except KeyError:
            raise EncodeError(f"unknown event {event!r}") from None

    def decode(self, payload: bytes, reader: SchemaVersion | None = None) -> Decoded:
        """Decode ``payload``, reading it as ``reader`` (default: as written).

        Raises a :class:`~tidings.codec.errors.DecodeError` subclass, and nothing else,
        for any bytes that are not a valid event.
        """
        if len(payload) < HEADER_SIZE:
            if not MAGIC.startswith(bytes(payload[: len(MAGIC)])):
                raise WrongMagic(f"starts with {bytes(payload[:2]).hex()}, not c301")
            raise TruncatedPayload(
                f"{len(payload)} byte(s) is shorter than the {HEADER_SIZE}-byte header"
            )
        if payload[:2] != MAGIC:
            raise WrongMagic(f"starts with {bytes(payload[:2]).hex()}, not c301")
        fp = bytes(payload[2:HEADER_SIZE])
        writer = self.catalogue.by_fingerprint(fp)
        if writer is None:
            raise UnknownSchema(f"no known schema has fingerprint {fp.hex()}")
        return decode_body(bytes(payload), HEADER_SIZE, writer, reader)

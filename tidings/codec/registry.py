"""Confluent Schema Registry wire format: magic byte ``0``, 4-byte big-endian schema id, body.

Used when ``cluster.schema_registry_url`` is set in topology.yaml. Schemas are
registered (or looked up) under ``<topic>-value`` subjects through confluent-kafka's
:class:`~confluent_kafka.schema_registry.SchemaRegistryClient`; a ``mock://`` URL
selects confluent-kafka's in-memory client, which is what the unit tests use (there
is no registry server in the test environment).

A topic that carries several event types (``orders`` carries order.created and
order.cancelled) needs ``subject_strategy="topic_record"`` against a real registry:
under ``<topic>-value`` the registry would check order.cancelled for compatibility
with order.created and refuse it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from io import BytesIO
from typing import Any, Literal

from tidings.codec._avro_body import decode_body, write_body
from tidings.codec.catalogue import SchemaCatalogue, SchemaVersion
from tidings.codec.decoded import Decoded
from tidings.codec.errors import (
    EncodeError,
    RegistryUnavailable,
    TruncatedPayload,
    UnknownSchema,
    WrongMagic,
)
from tidings.codec.fingerprint import fingerprint

MAGIC = 0
HEADER = struct.Struct(">bI")
SubjectStrategy = Literal["topic", "topic_record"]
_UNKNOWN_IDS_KEPT = 1024


class RegistryCodec:
    """Encode and decode events in the Confluent wire format, schemas kept in a registry."""

    def __init__(
        self,
        catalogue: SchemaCatalogue,
        client: Any,
        *,
        topics: Mapping[str, str] | None = None,
        auto_register: bool = True,
        subject_strategy: SubjectStrategy = "topic",
    ) -> None:
        """``client`` is a ``SchemaRegistryClient`` (or a URL to make one from);
        ``topics`` maps each event to its topic, so that :meth:`encode` can be called
        without one. With ``auto_register`` false, schemas must already be registered."""
        if isinstance(client, str):
            client = make_client(client)
        self.catalogue = catalogue
        self.client = client
        self.topics = dict(topics or {})
        self.auto_register = auto_register
        self.subject_strategy = subject_strategy
        self._ids: dict[tuple[str, str], tuple[SchemaVersion, bytes]] = {}
        self._writers: dict[int, SchemaVersion] = {}
        self._unknown: dict[int, str] = {}

    @classmethod
    def from_url(
        cls, catalogue: SchemaCatalogue, url: str, **options: Any
    ) -> RegistryCodec:
        """A codec talking to the registry at ``url`` (``mock://name`` for the in-memory one)."""
        return cls(catalogue, make_client(url), **options)

    def subject(self, topic: str, writer: SchemaVersion) -> str:
        """The registry subject that ``writer`` is registered under for ``topic``."""
        if self.subject_strategy == "topic_record":
            return f"{topic}-{_full_name(writer.raw)}"
        return f"{topic}-value"

    def encode(self, event: str, record: Mapping[str, Any], topic: str | None = None) -> bytes:
        """``record`` as bytes for ``topic`` (default: the event's topic in the topology).

        The first call per event and topic registers (or looks up) the schema; later
        calls reuse the id.
        """
        topic = topic or self.topics.get(event)
        if topic is None:
            raise EncodeError(f"no topic given for event {event!r} and none is known")
        cached = self._ids.get((event, topic))
        if cached is None:
            cached = self._ids[(event, topic)] = self._schema_id(event, topic)
        writer, header = cached
        out = BytesIO()
        out.write(header)
        write_body(out, writer, record)
        return out.getvalue()

    def decode(self, payload: bytes, reader: SchemaVersion | None = None) -> Decoded:
        """Decode ``payload``, reading it as ``reader`` (default: as written).

        Raises a :class:`~tidings.codec.errors.DecodeError` subclass for any bytes that
        are not a valid event, and :class:`RegistryUnavailable` when the registry
        cannot be asked (which is not the payload's fault).
        """
        if len(payload) < HEADER.size:
            if payload[:1] not in (b"", bytes([MAGIC])):
                raise WrongMagic(f"starts with {bytes(payload[:1]).hex()}, not 00")
            raise TruncatedPayload(
                f"{len(payload)} byte(s) is shorter than the {HEADER.size}-byte header"
            )
        magic, schema_id = HEADER.unpack_from(payload)
        if magic != MAGIC:
            raise WrongMagic(f"starts with {bytes(payload[:1]).hex()}, not 00")
        writer = self._writers.get(schema_id) or self._writer_of(schema_id)
        return decode_body(bytes(payload), HEADER.size, writer, reader)

    def _schema_id(self, event: str, topic: str) -> tuple[SchemaVersion, bytes]:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            writer = self.catalogue.writer(event)
        except KeyError:
            raise EncodeError(f"unknown event {event!r}") from None
        subject = self.subject(topic, writer)
        schema = Schema(json.dumps(writer.raw), "AVRO")
        try:
            if self.auto_register:
                schema_id = int(self.client.register_schema(subject, schema))
            else:
                schema_id = int(self.client.lookup_schema(subject, schema).schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code in (404, 409, 422):
                raise EncodeError(
                    f"registry refused {writer.label} under subject {subject!r}: {exc}"
                ) from exc
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        except Exception as exc:  # transport errors come from httpx and the OS
            raise RegistryUnavailable(f"schema registry: {type(exc).__name__}: {exc}") from exc
        self._writers[schema_id] = writer
        return writer, HEADER.pack(MAGIC, schema_id)

    def _writer_of(self, schema_id: int) -> SchemaVersion:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if schema_id in self._unknown:
            raise UnknownSchema(self._unknown[schema_id])
        try:
            registered = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                reason = f"registry has no schema id {schema_id}"
                raise self._unknown_schema(schema_id, reason) from None
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        except Exception as exc:  # transport errors come from httpx and the OS
            raise RegistryUnavailable(f"schema registry: {type(exc).__name__}: {exc}") from exc
        if (registered.schema_type or "AVRO") != "AVRO":
            raise self._unknown_schema(
                schema_id, f"schema id {schema_id} is {registered.schema_type}, not Avro"
            )
        try:
            fp = fingerprint(json.loads(registered.schema_str))
        except Exception:  # a registered schema fastavro cannot parse is still just unknown
            reason = f"schema id {schema_id} does not parse"
            raise self._unknown_schema(schema_id, reason) from None
        writer = self.catalogue.by_fingerprint(fp)
        if writer is None:
            raise self._unknown_schema(
                schema_id, f"schema id {schema_id} is not a schema of this topology"
            )
        self._writers[schema_id] = writer
        return writer

    def _unknown_schema(self, schema_id: int, reason: str) -> UnknownSchema:
        # Garbage payloads carry random ids; remember a bounded number of them so a
        # burst of bad messages does not turn into a burst of registry requests.
        if len(self._unknown) >= _UNKNOWN_IDS_KEPT:
            self._unknown.clear()
        self._unknown[schema_id] = reason
        return UnknownSchema(reason)


def make_client(url: str) -> Any:
    """A schema-registry client for ``url``; ``mock://...`` gives the in-memory client."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": url})


def _full_name(raw: Mapping[str, Any]) -> str:
    name = str(raw["name"])
    namespace = raw.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"

"""Confluent Schema Registry wire format: magic byte ``0``, 4-byte big-endian schema id, body.

Used when ``cluster.schema_registry_url`` is set in topology.yaml. Schemas are looked
up (or, with ``auto_register``, registered) through confluent-kafka's
:class:`~confluent_kafka.schema_registry.SchemaRegistryClient`, against any
Confluent-compatible registry (the integration tests run Apicurio Registry's
``/apis/ccompat/v7``); a ``mock://`` URL selects confluent-kafka's in-memory client.

A topic that carries several event types (``orders`` carries order.created and
order.cancelled) needs ``subject_strategy="topic_record"``, subjects named
``<topic>-<record full name>`` (Confluent's TopicRecordNameStrategy): under
``<topic>-value`` the registry would check order.cancelled for compatibility with
order.created and refuse it. The topology's codec always uses it.

A consumer reads by registry id: the id in each payload names the writer schema,
which is matched to a schema file of the topology by its canonical fingerprint.
"""

from __future__ import annotations

import contextlib
import json
import struct
import warnings
from collections.abc import Mapping
from io import BytesIO
from typing import Any, Literal

from tidings.codec._avro_body import decode_body, write_body
from tidings.codec.catalogue import SchemaCatalogue, SchemaVersion
from tidings.codec.decoded import Decoded
from tidings.codec.errors import (
    EncodeError,
    RegistryUnavailable,
    SchemaRejected,
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
            self.url: str | None = client
            client = make_client(client)
        else:
            self.url = None
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
        return cls(catalogue, url, **options)

    def subject(self, topic: str, writer: SchemaVersion) -> str:
        """The registry subject that ``writer`` is registered under for ``topic``."""
        if self.subject_strategy == "topic_record":
            return record_subject(topic, writer)
        return f"{topic}-value"

    def schema_id(self, event: str, topic: str | None = None) -> int:
        """The registry id of ``event``'s writer schema on ``topic`` (default: its
        topic), looked up or registered on the first call."""
        topic = topic or self.topics.get(event)
        if topic is None:
            raise EncodeError(f"no topic given for event {event!r} and none is known")
        cached = self._ids.get((event, topic))
        if cached is None:
            cached = self._ids[(event, topic)] = self._schema_id(event, topic)
        return int(HEADER.unpack(cached[1])[1])

    def schema_header(self, event: str) -> str:
        """The ``schema`` header value: the writer's registry id, in decimal."""
        return str(self.schema_id(event))

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
        where = f" at {self.url}" if self.url else ""
        try:
            if self.auto_register:
                schema_id = int(self.client.register_schema(subject, schema))
            else:
                schema_id = int(self.client.lookup_schema(subject, schema).schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SchemaRejected(
                    f"registry refused {writer.label}: it is not registered under subject "
                    f"{subject!r}{where}; run `tidings schemas register`, or set "
                    "cluster.auto_register_schemas: true to register on first publish"
                ) from exc
            if exc.http_status_code in (409, 422):
                raise SchemaRejected(
                    f"registry refused {writer.label} under subject {subject!r}{where}: "
                    f"{registry_message(exc)}"
                ) from exc
            raise RegistryUnavailable(f"schema registry{where}: {exc}") from exc
        except Exception as exc:  # transport errors come from httpx and the OS
            raise RegistryUnavailable(
                f"schema registry{where}: {type(exc).__name__}: {exc}") from exc
        self._writers[schema_id] = writer
        return writer, HEADER.pack(MAGIC, schema_id)

    def _writer_of(self, schema_id: int) -> SchemaVersion:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if schema_id in self._unknown:
            raise UnknownSchema(self._unknown[schema_id])
        where = f" at {self.url}" if self.url else ""
        try:
            registered = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                reason = f"registry has no schema id {schema_id}"
                raise self._unknown_schema(schema_id, reason) from None
            raise RegistryUnavailable(f"schema registry{where}: {exc}") from exc
        except Exception as exc:  # transport errors come from httpx and the OS
            raise RegistryUnavailable(
                f"schema registry{where}: {type(exc).__name__}: {exc}") from exc
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
    with warnings.catch_warnings():
        # authlib, imported by confluent-kafka's client, warns about its own httpx
        # integration on import; that is not the user's business. Its module installs an
        # "always" filter for its warnings when imported, so ours must come after it.
        with contextlib.suppress(ImportError):
            import authlib.deprecate  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": url})


def record_subject(topic: str, writer: SchemaVersion) -> str:
    """``<topic>-<record full name>``: where ``writer`` is registered for ``topic``
    (Confluent's TopicRecordNameStrategy, so each event type has its own history)."""
    return f"{topic}-{_full_name(writer.raw)}"


def registry_message(exc: Exception) -> str:
    """The registry's own words from a ``SchemaRegistryError``, without the Java
    exception class Apicurio puts in front of them."""
    text = str(getattr(exc, "error_message", None) or exc)
    head, sep, rest = text.partition(": ")
    if sep and "." in head and " " not in head and head.endswith("Exception"):
        text = rest
    return " ".join(text.split())


def _full_name(raw: Mapping[str, Any]) -> str:
    name = str(raw["name"])
    namespace = raw.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"

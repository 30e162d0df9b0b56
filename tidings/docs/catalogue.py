"""What the event catalogue shows, gathered once from a topology and its schemas."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tidings import headers as h
from tidings.codec import SchemaCatalogue
from tidings.codec.catalogue import SchemaVersion
from tidings.topology import Topology

#: The headers every event carries, and what each means (DESIGN.md, "Names on the wire").
EVENT_HEADERS: Mapping[str, str] = {
    h.EVENT_ID: "The idempotency key: a UUID unless the producer derives one.",
    h.EVENT_TYPE: "The event's name, e.g. order.created.",
    h.SCHEMA: "The writer schema's CRC-64-AVRO fingerprint (hex), or the registry id.",
    h.OCCURRED_AT: "When the event happened, RFC 3339 UTC.",
    h.PRODUCER: "The service that published it.",
    h.TRACEPARENT: "W3C trace context.",
}
#: Added when an event moves to a retry tier or a dead-letter topic.
FAILURE_HEADERS: Mapping[str, str] = {
    h.ATTEMPT: "How many attempts were made (on a retry: the number of the next one).",
    h.ORIGINAL_TOPIC: "The topic of the first failed delivery.",
    h.ORIGINAL_PARTITION: "Its partition.",
    h.ORIGINAL_OFFSET: "Its offset.",
    h.ERROR_CLASS: "The exception class that failed the event.",
    h.ERROR_MESSAGE: "Its message (at most 1000 characters).",
    h.FAILED_AT: "When it failed, RFC 3339 UTC.",
    h.NOT_BEFORE: "Retry tiers only: epoch milliseconds before which it is not handled.",
}


@dataclass(frozen=True)
class FieldDoc:
    name: str
    type: str
    doc: str
    optional: bool
    default: str | None  # JSON text of the default, None when there is none


@dataclass(frozen=True)
class VersionDoc:
    version: int
    file: str  # relative to the topology's directory
    fingerprint: str
    doc: str
    fields: list[FieldDoc]
    schema: dict[str, Any]
    #: Records defined inside the schema (``LineItem``), with their fields.
    nested: list[tuple[str, list[FieldDoc]]] = field(default_factory=list)


@dataclass(frozen=True)
class ConsumerDoc:
    group: str
    handler: str
    subscribes: list[str]
    retry: list[str]  # tier labels, in order
    dlq: bool
    batch: str | None  # "500 events / 2s", None for per-event handlers
    transaction: str
    concurrency: int


@dataclass(frozen=True)
class EventDoc:
    name: str
    topic: str
    key: str | None
    compatibility: str
    model: str | None
    doc: str
    current: int
    versions: list[VersionDoc]
    publishers: list[str]
    consumers: list[ConsumerDoc]

    @property
    def writer(self) -> VersionDoc:
        return next(v for v in self.versions if v.version == self.current)


@dataclass(frozen=True)
class ChannelDoc:
    """A topic and its role: ``topic`` (declared), ``retry``, ``dlq`` or ``replay``."""

    name: str
    kind: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]
    description: str
    events: list[str]
    source: str  # the declared topic it derives from (itself for a declared topic)
    group: str | None = None
    tier: str | None = None


@dataclass
class Catalogue:
    name: str
    file: str
    events: dict[str, EventDoc] = field(default_factory=dict)
    channels: dict[str, ChannelDoc] = field(default_factory=dict)
    consumers: dict[str, ConsumerDoc] = field(default_factory=dict)
    producers: dict[str, list[str]] = field(default_factory=dict)


def build_catalogue(topology: Topology) -> Catalogue:
    """The catalogue of ``topology`` (its schema files are read; nothing is imported)."""
    schemas = SchemaCatalogue.from_events(topology.declared_events())
    catalogue = Catalogue(topology.name, topology.path.name)
    for group, consumer in topology.consumers.items():
        batch = (f"{consumer.batch.max_events} events / {consumer.batch.max_wait.label}"
                 if consumer.batch else None)
        catalogue.consumers[group] = ConsumerDoc(
            group, consumer.handler, list(consumer.subscribes),
            [d.label for d in consumer.retry], consumer.dlq, batch,
            "batch" if consumer.batch else consumer.transaction, consumer.concurrency)
    catalogue.producers = {name: list(spec.publishes) for name, spec in topology.producers.items()}
    for name, spec in topology.events.items():
        versions = [_version(v, topology) for v in schemas.versions(name)]
        writer = schemas.writer(name)
        catalogue.events[name] = EventDoc(
            name=name, topic=spec.topic, key=spec.key, compatibility=spec.compatibility,
            model=spec.model, doc=str(writer.raw.get("doc", "")), current=writer.version,
            versions=versions,
            publishers=[p for p, events in catalogue.producers.items() if name in events],
            consumers=[c for c in catalogue.consumers.values() if name in c.subscribes])
    for desired in topology.desired_topics():
        source = desired.parent or desired.name
        events_here = [e for e, declared in topology.events.items() if declared.topic == source]
        kind, owner, tier = _role(desired.name, source, topology)
        if owner is not None:
            events_here = [e for e in events_here if e in topology.consumers[owner].subscribes]
        catalogue.channels[desired.name] = ChannelDoc(
            name=desired.name, kind=kind, partitions=desired.partitions,
            replication_factor=desired.replication_factor, config=dict(desired.config),
            description=_describe(kind, source, owner, tier), events=events_here,
            source=source, group=owner, tier=tier)
    return catalogue


def _role(name: str, source: str, topology: Topology) -> tuple[str, str | None, str | None]:
    if name == source:
        return "topic", None, None
    rest = name[len(source) + 1:]
    for group in sorted(topology.consumers, key=len, reverse=True):
        if rest.startswith(f"{group}."):
            suffix = rest[len(group) + 1:]
            if suffix.startswith("retry."):
                return "retry", group, suffix[len("retry."):]
            return suffix, group, None  # "dlq" or "replay"
    return "topic", None, None


def _describe(kind: str, source: str, group: str | None, tier: str | None) -> str:
    if kind == "retry":
        return (f"Retry tier {tier} of consumer group {group}: its events of {source} that "
                f"failed are handled again once their not-before time has passed.")
    if kind == "dlq":
        return (f"Dead letters of consumer group {group}: its events of {source} that failed "
                "every retry tier, could not be decoded, or raised NonRetryableError.")
    if kind == "replay":
        return f"Replays and DLQ redrives of {source} for consumer group {group} only."
    return f"Topic {source}."


def _version(version: SchemaVersion, topology: Topology) -> VersionDoc:
    try:
        file = str(version.path.relative_to(topology.root))
    except ValueError:
        file = str(version.path)
    raw = version.raw
    fields = [_field(f) for f in raw.get("fields", [])] if raw.get("type") == "record" else []
    nested: list[tuple[str, list[FieldDoc]]] = []
    for record in _nested_records(raw):
        nested.append((str(record.get("name")), [_field(f) for f in record.get("fields", [])]))
    return VersionDoc(version.version, file, version.fingerprint.hex(), str(raw.get("doc", "")),
                      fields, raw, nested)


def _nested_records(schema: Any, top: bool = True) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(schema, list):
        for branch in schema:
            found += _nested_records(branch, False)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            if not top:
                found.append(schema)
            for item in schema.get("fields", []):
                found += _nested_records(item.get("type"), False)
        elif schema.get("type") == "array":
            found += _nested_records(schema.get("items"), False)
        elif schema.get("type") == "map":
            found += _nested_records(schema.get("values"), False)
    return found


def _field(raw: Mapping[str, Any]) -> FieldDoc:
    schema = raw.get("type")
    optional = isinstance(schema, list) and "null" in schema
    default = json.dumps(raw["default"]) if "default" in raw else None
    return FieldDoc(str(raw.get("name")), type_text(schema), str(raw.get("doc", "")), optional,
                    default)


def type_text(schema: Any) -> str:
    """An Avro type as people read it: ``string``, ``array<LineItem>``, ``string?``."""
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    if isinstance(schema, list):
        others = [type_text(s) for s in schema if s != "null"]
        text = " | ".join(others) if others else "null"
        return f"{text}?" if "null" in schema else text
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical:
            return str(logical)
        kind = schema.get("type")
        if kind == "array":
            return f"array<{type_text(schema.get('items'))}>"
        if kind == "map":
            return f"map<{type_text(schema.get('values'))}>"
        if kind == "enum":
            return f"enum {schema.get('name')} ({', '.join(schema.get('symbols', []))})"
        if kind in ("record", "fixed"):
            return str(schema.get("name"))
        return type_text(kind)
    return str(schema)

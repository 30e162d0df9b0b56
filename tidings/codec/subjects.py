"""A topology's schemas in a schema registry: register them, and ask it about new ones.

Each event has its own subject, ``<topic>-<record full name>`` (see
:func:`tidings.codec.registry.record_subject`). Registering sets that subject's
compatibility level from the event's ``compatibility:`` in topology.yaml, made
*transitive* (``BACKWARD`` -> ``BACKWARD_TRANSITIVE``): ``tidings schemas check`` compares
every version with every earlier one, because a consumer may meet any of them on a
topic, and the registry must judge a new version the same way for the two to agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from tidings.codec.catalogue import DeclaredEvent, SchemaCatalogue, SchemaVersion
from tidings.codec.errors import RegistryUnavailable, SchemaRejected
from tidings.codec.registry import record_subject, registry_message

#: topology.yaml's compatibility -> the registry's level for the same (transitive) rule.
REGISTRY_LEVELS = {
    "BACKWARD": "BACKWARD_TRANSITIVE",
    "FORWARD": "FORWARD_TRANSITIVE",
    "FULL": "FULL_TRANSITIVE",
    "NONE": "NONE",
}

Outcome = Literal["registered", "present", "skipped"]


@dataclass(frozen=True)
class Registration:
    """What ``register`` did with one schema version."""

    event: str
    version: int
    subject: str
    schema_id: int | None
    #: registered now; present already; skipped (a newer version is registered, and
    #: registering an older one after it would make the older one the subject's latest).
    outcome: Outcome


@dataclass(frozen=True)
class Verdict:
    """The registry's answer for one schema version the registry does not hold yet."""

    event: str
    version: int
    subject: str
    #: The subject's compatibility level as the registry applies it.
    level: str
    #: True/False: the registry would accept/refuse it. None: the subject holds no
    #: version yet, so there is nothing to check against (the first is always accepted).
    compatible: bool | None


def _schema(version: SchemaVersion) -> Any:
    from confluent_kafka.schema_registry import Schema

    return Schema(json.dumps(version.raw), "AVRO")


def _where(url: str | None) -> str:
    return f" at {url}" if url else ""


def _call(what: str, url: str | None, call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args)``; a registry that cannot be reached is :class:`RegistryUnavailable`.
    A 404 comes back as None; other registry errors are raised for the caller to map."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return call(*args, **kwargs)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        if exc.http_status_code in (409, 422):
            raise
        raise RegistryUnavailable(f"schema registry{_where(url)}: {what}: {exc}") from exc
    except Exception as exc:  # transport errors come from httpx and the OS
        raise RegistryUnavailable(
            f"schema registry{_where(url)}: {what}: {type(exc).__name__}: {exc}") from exc


def _lookup(client: Any, url: str | None, subject: str, version: SchemaVersion) -> int | None:
    found = _call(f"looking up {version.label}", url, client.lookup_schema, subject,
                  _schema(version))
    return None if found is None else int(found.schema_id)


def _publishable(catalogue: SchemaCatalogue, event: str) -> list[SchemaVersion]:
    writer = catalogue.writer(event)
    return [v for v in catalogue.versions(event) if v.version <= writer.version]


def register_schemas(
    catalogue: SchemaCatalogue, declared: Iterable[DeclaredEvent], client: Any,
    *, url: str | None = None,
) -> list[Registration]:
    """Set each event's subject to its compatibility level and register its versions,
    oldest first, up to the one the topology writes (a newer file is a staged rollout).

    Idempotent: versions already registered are left alone. Raises
    :class:`SchemaRejected` naming the version, subject, level and the registry's reason
    when the registry refuses one (later versions of that event are not attempted).
    """
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    done: list[Registration] = []
    for item in declared:
        writer = catalogue.writer(item.name)
        subject = record_subject(item.topic, writer)
        level = REGISTRY_LEVELS[item.compatibility]
        try:
            _call(f"setting {subject}'s compatibility", url, client.set_compatibility,
                  subject, level)
        except SchemaRegistryError as exc:
            raise SchemaRejected(f"{item.name}: the registry{_where(url)} refused "
                                 f"compatibility {level} for subject {subject!r}: "
                                 f"{registry_message(exc)}") from exc
        versions = _publishable(catalogue, item.name)
        present = {v.version: _lookup(client, url, subject, v) for v in versions}
        newest_present = max((n for n, sid in present.items() if sid is not None), default=0)
        for version in versions:
            schema_id = present[version.version]
            if schema_id is not None:
                done.append(Registration(item.name, version.version, subject, schema_id,
                                         "present"))
                continue
            if version.version < newest_present:
                done.append(Registration(item.name, version.version, subject, None, "skipped"))
                continue
            try:
                schema_id = int(_call(f"registering {version.label}", url,
                                      client.register_schema, subject, _schema(version)))
            except SchemaRegistryError as exc:
                raise SchemaRejected(
                    f"{version.label} refused by the registry{_where(url)} under subject "
                    f"{subject!r} ({level}): {registry_message(exc)}") from exc
            done.append(Registration(item.name, version.version, subject, schema_id,
                                     "registered"))
    return done


def check_with_registry(
    catalogue: SchemaCatalogue, declared: Iterable[DeclaredEvent], client: Any,
    *, url: str | None = None,
) -> tuple[list[Verdict], list[str]]:
    """Ask the registry about every schema version it does not hold yet.

    Uses the registry's own check (``POST /compatibility/subjects/<subject>/versions``,
    every registered version under the subject's level). Returns the verdicts and
    warnings: a subject whose level is not the one topology.yaml implies is judged
    by other rules than the local check, so the two may disagree.
    """
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    verdicts: list[Verdict] = []
    warnings: list[str] = []
    for item in declared:
        writer = catalogue.writer(item.name)
        subject = record_subject(item.topic, writer)
        expected = REGISTRY_LEVELS[item.compatibility]
        held = _call(f"reading {subject}'s versions", url, client.get_versions, subject)
        level = (_call(f"reading {subject}'s compatibility", url, client.get_compatibility,
                       subject)
                 or _call("reading the global compatibility", url, client.get_compatibility)
                 or "NONE")
        if held and level != expected:
            warnings.append(
                f"{item.name}: the registry checks subject {subject!r} with {level}, but "
                f"topology.yaml declares {item.compatibility} ({expected}); run `tidings "
                "schemas register` to set it")
        for version in catalogue.versions(item.name):
            if held and _lookup(client, url, subject, version) is not None:
                continue
            if not held:
                verdicts.append(Verdict(item.name, version.version, subject, level, None))
                continue
            try:
                answer = _call(f"checking {version.label}", url,
                               client.test_compatibility_all_versions, subject,
                               _schema(version))
            except SchemaRegistryError as exc:  # 422: the registry cannot parse it
                raise SchemaRejected(f"{version.label}: the registry{_where(url)} cannot "
                                     f"check it: {registry_message(exc)}") from exc
            verdicts.append(Verdict(item.name, version.version, subject, level, bool(answer)))
    return verdicts, warnings

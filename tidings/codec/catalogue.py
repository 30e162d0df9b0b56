"""Every version of every event's schema, loaded and parsed once.

Versions are found by file name: the topology names ``schemas/order.created.v2.avsc``
as the current (writer) version, and every ``schemas/order.created.v<N>.avsc`` next
to it is another version of the same event. Old versions must stay: consumers need
them to read events written before the upgrade.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

from tidings.codec.fingerprint import fingerprint
from tidings.errors import ConfigError

VERSIONED_FILE = re.compile(r"^(?P<stem>.+)\.v(?P<version>[0-9]+)\.avsc$")


@dataclass(frozen=True, eq=False)
class SchemaVersion:
    """One ``.avsc`` file: an event's schema at one version."""

    event: str
    version: int
    path: Path
    raw: dict[str, Any] = field(repr=False)
    #: fastavro's parsed form, passed straight to its reader and writer.
    parsed: Any = field(repr=False)
    #: CRC-64-AVRO of the canonical form, 8 bytes little-endian.
    fingerprint: bytes = field(repr=False)

    @property
    def label(self) -> str:
        """``order.created v2``: how messages name this version."""
        return f"{self.event} v{self.version}"


class CatalogueError(ConfigError):
    """Schema files could not be loaded; ``problems`` pairs each event with what is wrong."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{event}: {message}" for event, message in problems))


def version_of(path: Path | str) -> tuple[str, int] | None:
    """``(stem, N)`` for a file named ``<stem>.v<N>.avsc``, else None."""
    match = VERSIONED_FILE.match(Path(path).name)
    if match is None:
        return None
    return match["stem"], int(match["version"])


def discover_versions(current: Path) -> dict[int, Path]:
    """Every version of the schema family ``current`` belongs to, by version number.

    Raises :class:`ValueError` when ``current`` is not named ``<stem>.v<N>.avsc``.
    """
    parsed = version_of(current)
    if parsed is None:
        raise ValueError(
            f"schema file {current.name!r} is not named <event>.v<N>.avsc, so its version "
            "(and its older versions) cannot be found"
        )
    stem, _ = parsed
    found: dict[int, Path] = {}
    for candidate in sorted(current.parent.glob(f"{glob_escape(stem)}.v*.avsc")):
        other = version_of(candidate)
        if other is not None and other[0] == stem:
            found[other[1]] = candidate
    return found


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters made literal (event names may not hold them,
    but file stems are not validated)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def load_raw(path: Path) -> dict[str, Any]:
    """The JSON of one ``.avsc`` file; raises :class:`ValueError` with a readable reason."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path.name}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at its line {exc.lineno}"
        raise ValueError(f"{path.name} is not valid JSON: {where}") from None
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise ValueError(f"{path.name} must be an Avro record schema")
    return raw


def load_version(event: str, version: int, path: Path) -> SchemaVersion:
    """Read, parse and fingerprint one schema file."""
    raw = load_raw(path)
    try:
        parsed = fastavro.parse_schema(raw)
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        raise ValueError(f"{path.name} is not a valid Avro schema: {exc}") from None
    return SchemaVersion(event, version, path, raw, parsed, fingerprint(parsed))


@dataclass(frozen=True)
class DeclaredEvent:
    """What the codec needs of one event declared in topology.yaml; the codec builds
    from these and never needs the topology itself."""

    name: str
    #: The schema file the topology names: the version publishers write.
    schema_file: Path
    topic: str
    compatibility: str = "BACKWARD"


class SchemaCatalogue:
    """The schemas of a topology: what a codec writes with and can read."""

    def __init__(self, versions: Iterable[SchemaVersion], writers: Mapping[str, int]) -> None:
        self._versions: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        problems: list[tuple[str, str]] = []
        for schema in sorted(versions, key=lambda s: (s.event, s.version)):
            self._versions.setdefault(schema.event, {})[schema.version] = schema
            clash = self._by_fingerprint.get(schema.fingerprint)
            if clash is not None and clash.event != schema.event:
                problems.append((schema.event, f"v{schema.version} has the same canonical "
                                 f"schema as {clash.label}; on the wire they could not be "
                                 "told apart"))
                continue
            # Within one event, versions that differ only in docs or defaults share a
            # canonical form; they decode identically, so the newest one names them.
            self._by_fingerprint[schema.fingerprint] = schema
        self._writers: dict[str, SchemaVersion] = {}
        for event, number in writers.items():
            known = self._versions.get(event, {})
            if number not in known:
                problems.append((event, f"the writer version v{number} is not loaded"))
            else:
                self._writers[event] = known[number]
        if problems:
            raise CatalogueError(problems)

    @classmethod
    def from_events(cls, declared: Iterable[DeclaredEvent]) -> SchemaCatalogue:
        """Load every version of every declared event (``Topology.declared_events()``).

        Raises :class:`CatalogueError` listing each file that cannot be used.
        """
        versions: list[SchemaVersion] = []
        writers: dict[str, int] = {}
        problems: list[tuple[str, str]] = []
        for item in declared:
            event, current = item.name, item.schema_file
            try:
                found = discover_versions(current)
            except ValueError as exc:
                problems.append((event, str(exc)))
                continue
            parsed_name = version_of(current)
            assert parsed_name is not None  # discover_versions checked the name
            writers[event] = parsed_name[1]
            for number, path in found.items():
                try:
                    versions.append(load_version(event, number, path))
                except ValueError as exc:
                    problems.append((event, str(exc)))
        if problems:
            raise CatalogueError(problems)
        return cls(versions, writers)

    @property
    def events(self) -> tuple[str, ...]:
        """The events with at least one schema version, sorted."""
        return tuple(sorted(self._versions))

    def writer(self, event: str) -> SchemaVersion:
        """The version the topology names: what publishers write today."""
        try:
            return self._writers[event]
        except KeyError:
            raise KeyError(f"unknown event {event!r}") from None

    def version(self, event: str, number: int) -> SchemaVersion:
        """Version ``number`` of ``event``; :class:`KeyError` when there is none."""
        try:
            return self._versions[event][number]
        except KeyError:
            raise KeyError(f"no schema version v{number} of event {event!r}") from None

    def versions(self, event: str) -> list[SchemaVersion]:
        """Every version of ``event``, oldest first."""
        try:
            found = self._versions[event]
        except KeyError:
            raise KeyError(f"unknown event {event!r}") from None
        return [found[number] for number in sorted(found)]

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        """The version whose canonical form has fingerprint ``fp``, if any."""
        return self._by_fingerprint.get(fp)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for event in self.events:
            yield from self.versions(event)

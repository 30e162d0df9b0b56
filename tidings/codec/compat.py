"""Schema evolution rules: may version N of an event replace the versions before it?

The verdicts come from the Apache ``avro`` package's
``ReaderWriterCompatibilityChecker`` (the Java rules, ported). Its result merges all
findings of a record into unordered sets, so to say *which* field broke we walk the
two records ourselves and ask the checker one field at a time.

Compatibility modes, as in Confluent Schema Registry (transitively: every version
against every earlier one, because consumers may meet any of them on a topic):

* ``BACKWARD`` (default): the newer version can read data written with an older one;
  upgrade consumers first.
* ``FORWARD``: an older version can read data written with the newer one; upgrade
  producers first.
* ``FULL``: both. ``NONE``: not checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tidings.codec.catalogue import DeclaredEvent, discover_versions, load_raw, version_of

if TYPE_CHECKING:
    from avro.compatibility import SchemaCompatibilityResult
    from avro.schema import Schema

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One result of the check; errors fail it, warnings are printed and pass."""

    event: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}" if self.severity == "warning" else self.message


def check_events(declared: Iterable[DeclaredEvent]) -> list[Finding]:
    """Every finding for every declared event (``Topology.declared_events()``)."""
    findings: list[Finding] = []
    for item in declared:
        findings.extend(check_event(item))
    return findings


def check_event(declared: DeclaredEvent) -> list[Finding]:
    """Load every version of an event next to its current schema file and check them."""
    event, current = declared.name, declared.schema_file

    def error(message: str) -> Finding:
        return Finding(event, "error", f"{event}: {message}")

    try:
        found = discover_versions(current)
    except ValueError as exc:
        return [error(str(exc))]
    named = version_of(current)
    assert named is not None  # discover_versions checked the name
    findings = [error(m) for m in version_gaps(found)]
    newest = max(found, default=named[1])
    if named[1] != newest:
        # A newer file next to the current one is how a rollout is staged (BACKWARD:
        # consumers first, then point `schema:` at it), so it is not an error.
        findings.append(Finding(event, "warning",
                                f"{event}: topology writes v{named[1]}, but v{newest} exists "
                                f"({found[newest].name}); publishers keep writing v{named[1]}"))
    raw: dict[int, dict[str, Any]] = {}
    for number, path in sorted(found.items()):
        try:
            raw[number] = load_raw(path)
        except ValueError as exc:
            findings.append(error(str(exc)))
    if len(raw) == len(found):
        findings.extend(error(m) for m in compatibility_problems(raw, declared.compatibility))
    return findings


def version_gaps(found: Mapping[int, Path]) -> list[str]:
    """Missing version numbers: every version from v1 to the newest must stay on disk,
    because data written with a deleted version can no longer be read."""
    if not found:
        return []
    missing = [n for n in range(1, max(found) + 1) if n not in found]
    if not missing:
        return []
    listed = ", ".join(f"v{n}" for n in missing)
    return [f"versions must be numbered v1, v2, ... without gaps; missing {listed}"]


def compatibility_problems(versions: Mapping[int, Mapping[str, Any]], mode: str,
                           only: int | None = None) -> list[str]:
    """Why some version pair breaks ``mode``; one line per broken field.

    ``versions`` maps version numbers to schema JSON. Every version is checked against
    every earlier one; with ``only``, just version ``only`` against the earlier ones
    (what a registry checks when that version is registered).
    """
    if mode == "NONE":
        return []
    import avro.errors
    import avro.schema

    parsed: dict[int, Schema] = {}
    problems: list[str] = []
    for number in sorted(versions):
        try:
            parsed[number] = avro.schema.parse(json.dumps(versions[number]))
        except (avro.errors.AvroException, ValueError, TypeError) as exc:
            problems.append(f"v{number} is not a valid Avro schema: {exc}")
    numbers = sorted(parsed)
    for index, newer in enumerate(numbers):
        if only is not None and newer != only:
            continue
        for older in numbers[:index]:
            if mode in ("BACKWARD", "FULL"):
                problems.extend(_pair(parsed, reader=newer, writer=older, mode=mode))
            if mode in ("FORWARD", "FULL"):
                problems.extend(_pair(parsed, reader=older, writer=newer, mode=mode))
    return problems


def _pair(parsed: Mapping[int, Schema], *, reader: int, writer: int, mode: str) -> list[str]:
    prefix = f"v{reader} cannot read v{writer} ({mode})"
    return [f"{prefix}: {reason}" for reason in explain(parsed[reader], parsed[writer])]


def explain(reader: Schema, writer: Schema) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer``; empty when it can."""
    result = _check(reader, writer)
    if result is None:
        return []
    reasons = _explain(reader, writer, "", "")
    # The walk mirrors the checker; should they ever disagree, the checker's word stands.
    return reasons or [f"{'; '.join(sorted(result.messages))} at "
                       f"{', '.join(sorted(result.locations))}"]


def _explain(reader: Schema, writer: Schema, location: str, field: str) -> list[str]:
    from avro.compatibility import lookup_writer_field, schema_name_equals

    if _check(reader, writer) is None:
        return []
    where = f"field {field!r}: " if field else ""
    if reader.type == writer.type == "record":
        if not schema_name_equals(reader, writer):  # type: ignore[arg-type]
            return [f"{where}record name {_name(reader)!r} does not match writer's "
                    f"{_name(writer)!r} (add an alias) at {location or '/'}"]
        reasons: list[str] = []
        for index, reader_field in enumerate(reader.fields):  # type: ignore[attr-defined]
            path = f"{field}.{reader_field.name}" if field else reader_field.name
            writer_field = lookup_writer_field(writer, reader_field)  # type: ignore[arg-type]
            if writer_field is None:
                if not reader_field.has_default:
                    reasons.append(f"field {path!r}: reader has it without a default and the "
                                   f"writer does not write it at {location}/fields/{index}")
                continue
            reasons.extend(_explain(reader_field.type, writer_field.type,
                                    f"{location}/fields/{index}/type", path))
        return reasons
    if reader.type == writer.type == "array":
        return _explain(reader.items, writer.items,  # type: ignore[attr-defined]
                        f"{location}/items", f"{field}[]")
    if reader.type == writer.type == "map":
        return _explain(reader.values, writer.values,  # type: ignore[attr-defined]
                        f"{location}/values", f"{field}{{}}")
    if reader.type == writer.type == "enum":
        missing = sorted(set(writer.symbols) - set(reader.symbols))  # type: ignore[attr-defined]
        return [f"{where}reader enum lacks writer symbols {missing} at {location or '/'}"]
    return [f"{where}reader type {_type_text(reader)!r} does not match writer type "
            f"{_type_text(writer)!r} at {location or '/'}"]


def _check(reader: Schema, writer: Schema) -> SchemaCompatibilityResult | None:
    """The checker's result when ``reader`` cannot read ``writer``, else None."""
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    return result if result.compatibility is SchemaCompatibilityType.incompatible else None


def _name(schema: Schema) -> str:
    return str(getattr(schema, "fullname", schema.type))


def _type_text(schema: Schema) -> str:
    if schema.type == "union":
        branches = schema.schemas  # type: ignore[attr-defined]
        return "[" + ", ".join(_type_text(branch) for branch in branches) + "]"
    if schema.type in ("record", "enum", "fixed"):
        return f"{schema.type} {_name(schema)}"
    if schema.type == "array":
        return f"array<{_type_text(schema.items)}>"  # type: ignore[attr-defined]
    if schema.type == "map":
        return f"map<{_type_text(schema.values)}>"  # type: ignore[attr-defined]
    logical = schema.get_prop("logicalType")
    return f"{schema.type} ({logical})" if logical else str(schema.type)

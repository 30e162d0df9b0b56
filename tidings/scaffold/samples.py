"""An example record for an event, from its Avro schema, that its model accepts.

Generated tests need one valid event per subscribed type. The first guess follows the
schema (strings, ones, a fixed moment); where the model's own constraints reject it,
a few common repairs are tried (a pattern-shaped string, another number).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

MOMENT = "2026-01-01T00:00:00Z"
#: Strings tried, in order, for a field whose model requires a pattern.
_PATTERNED = ("someone@example.com", "EUR", "ABC", "example", "x", "1", "A1", "a-1")


def example_record(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A record for ``schema`` built from its types alone."""
    names: dict[str, Any] = {}
    value = _value(schema, "", names)
    assert isinstance(value, dict)
    return value


def _value(schema: Any, field: str, names: dict[str, Any]) -> Any:
    if isinstance(schema, str):
        if schema in names:
            return _value(names[schema], field, names)
        return _primitive(schema, field)
    if isinstance(schema, list):
        if "null" in schema:
            return None
        return _value(schema[0], field, names)
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis",
                   "local-timestamp-micros"):
        return MOMENT.rstrip("Z") if logical.startswith("local") else MOMENT
    if logical == "date":
        return MOMENT[:10]
    if logical == "uuid":
        return "00000000-0000-4000-8000-000000000001"
    if logical == "decimal":
        return "1"
    if kind == "record":
        names[str(schema.get("name"))] = schema
        if schema.get("namespace"):
            names[f"{schema['namespace']}.{schema.get('name')}"] = schema
        return {f["name"]: _value(f["type"], f["name"], names) for f in schema.get("fields", [])}
    if kind == "enum":
        names[str(schema.get("name"))] = schema
        return schema["symbols"][0]
    if kind == "fixed":
        names[str(schema.get("name"))] = schema
        return b"\x00" * int(schema.get("size", 1))
    if kind == "array":
        return [_value(schema["items"], field, names)]
    if kind == "map":
        return {}
    return _value(kind, field, names)


def _primitive(kind: str, field: str) -> Any:
    lowered = field.lower()
    if kind == "string":
        if "email" in lowered:
            return "someone@example.com"
        if "currency" in lowered:
            return "EUR"
        return "example"
    if kind in ("int", "long"):
        return 1
    if kind in ("float", "double"):
        return 1.0
    if kind == "boolean":
        return False
    if kind == "bytes":
        return b""
    return None


def valid_example(model: type[BaseModel], schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """An example record and whether ``model`` accepts it."""
    record = example_record(schema)
    for _ in range(20):
        try:
            model.model_validate(record)
            return record, True
        except ValidationError as exc:
            repaired = _repair(model, record, exc)
        if repaired is None:
            return record, False
        record = repaired
    return record, False


def _repair(model: type[BaseModel], record: dict[str, Any],
            error: ValidationError) -> dict[str, Any] | None:
    for problem in error.errors():
        loc = problem["loc"]
        if problem["type"] == "string_pattern_mismatch" and loc:
            pattern = re.compile(str(problem["ctx"]["pattern"]))
            for candidate in _PATTERNED:
                if pattern.search(candidate):
                    return _set(record, loc, candidate)
        if problem["type"] == "value_error" and not loc:
            # A rule across fields: try each number once as 0 and as 2.
            for path in _number_paths(record):
                for number in (0, 2):
                    attempt = _set(record, path, number)
                    try:
                        model.model_validate(attempt)
                        return attempt
                    except ValidationError:
                        continue
            return None
    return None


def _number_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _number_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _number_paths(v, (*path, i))]
    return []


def _set(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(record)
    target: Any = result
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return result

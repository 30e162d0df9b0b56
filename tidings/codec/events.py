"""Typed events: pydantic models that mirror an Avro record schema.

A model is what publishing and handling code works with; its schema is what goes
on the wire. :func:`model_problems` keeps the two honest: ``tidings topology
validate`` runs it for every event that names a ``model:``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import types
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, NaiveDatetime
from pydantic.fields import FieldInfo


class Record(BaseModel):
    """A value of an Avro record type: immutable, and no field the schema lacks."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Record):
    """An event: a record with a name (``event_type``) and the schema version it mirrors."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    def to_avro(self) -> dict[str, Any]:
        """The record as fastavro writes it: nested models become dicts, datetimes stay
        (timezone-aware) datetimes."""
        return self.model_dump(mode="python")

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """The model of a decoded record; raises :class:`pydantic.ValidationError`."""
        return cls.model_validate(record)


# ---------------------------------------------------------------------------------------
# Model <-> schema comparison


@dataclass(frozen=True)
class _AvroType:
    """One Avro type, reduced to what a Python annotation can be compared with."""

    kind: str  # a primitive name, "timestamp", "date", "uuid", "decimal", "array", ...
    text: str  # how messages show it: "string", "array<LineItem>", ...
    items: Any = None  # the raw schema of an array's items or a map's values
    fields: tuple[Mapping[str, Any], ...] = ()
    symbols: tuple[str, ...] = ()
    name: str = ""


_PRIMITIVE_PYTHON: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "boolean": (bool,),
    "float": (float,),
    "double": (float,),
    "bytes": (bytes,),
    "null": (type(None),),
}
_LOGICAL: dict[tuple[str, str], tuple[str, tuple[type, ...]]] = {
    ("long", "timestamp-millis"): ("timestamp", (dt.datetime, AwareDatetime)),
    ("long", "timestamp-micros"): ("timestamp", (dt.datetime, AwareDatetime)),
    ("long", "local-timestamp-millis"): ("local-timestamp", (dt.datetime, NaiveDatetime)),
    ("long", "local-timestamp-micros"): ("local-timestamp", (dt.datetime, NaiveDatetime)),
    ("int", "date"): ("date", (dt.date,)),
    ("string", "uuid"): ("uuid", (uuid.UUID, str)),
    ("bytes", "decimal"): ("decimal", (decimal.Decimal,)),
}


class _Names:
    """Named types seen so far in a schema, so that a later reference by name resolves."""

    def __init__(self) -> None:
        self.known: dict[str, Any] = {}

    def define(self, schema: Mapping[str, Any], namespace: str | None) -> None:
        name = str(schema.get("name", ""))
        space = schema.get("namespace", namespace)
        self.known[name] = schema
        if space and "." not in name:
            self.known[f"{space}.{name}"] = schema


def _avro_type(schema: Any, names: _Names, namespace: str | None = None) -> _AvroType:
    if isinstance(schema, str):
        if schema in _PRIMITIVE_PYTHON:
            return _AvroType(schema, schema)
        if schema in names.known:
            return _avro_type(names.known[schema], names, namespace)
        return _AvroType("unknown", f"unknown type {schema!r}")
    if isinstance(schema, list):
        return _AvroType("union", "union [" + ", ".join(_brief(s) for s in schema) + "]")
    kind = str(schema.get("type"))
    logical = _LOGICAL.get((kind, str(schema.get("logicalType"))))
    if logical is not None:
        return _AvroType(logical[0], str(schema["logicalType"]))
    if kind in _PRIMITIVE_PYTHON:
        return _AvroType(kind, kind)
    if kind == "array":
        items = _avro_type(schema["items"], names, namespace)
        return _AvroType("array", f"array<{items.text}>", items=schema["items"])
    if kind == "map":
        values = _avro_type(schema["values"], names, namespace)
        return _AvroType("map", f"map<{values.text}>", items=schema["values"])
    if kind in ("record", "enum", "fixed"):
        names.define(schema, namespace)
        name = str(schema["name"])
        inner_ns = schema.get("namespace", namespace)
        if kind == "record":
            return _AvroType("record", f"record {name}", fields=tuple(schema["fields"]),
                             name=str(inner_ns or ""))
        if kind == "enum":
            return _AvroType("enum", f"enum {name}", symbols=tuple(schema["symbols"]))
        return _AvroType("bytes", f"fixed {name}")
    return _AvroType("unknown", f"unsupported type {kind!r}")


def _brief(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("logicalType") or schema.get("type"))
    return str(schema)


def _optional_branch(schema: Any) -> Any | None:
    """``X`` of a ``["null", X]`` (or ``[X, "null"]``) union, else None."""
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        return schema[1] if schema[0] == "null" else schema[0]
    return None


def _bare(annotation: Any) -> Any:
    """The annotation without ``Annotated[...]`` constraints, which only narrow values."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` / ``Optional[X]``, else ``(annotation, False)``."""
    annotation = _bare(annotation)
    if _is_union(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return _bare(args[0]), True
    return annotation, False


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is types.UnionType


def _show(annotation: Any) -> str:
    """An annotation as its author would write it: ``list[LineItem]``, ``str | None``."""
    annotation = _bare(annotation)
    if annotation is type(None):
        return "None"
    args = typing.get_args(annotation)
    if _is_union(annotation):
        return " | ".join(_show(arg) for arg in args)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is ... else _show(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _describe_schema(avro: _AvroType, optional: bool, field: Mapping[str, Any]) -> str:
    text = f"optional {avro.text}" if optional else avro.text
    if "default" in field:
        return f"{text} with default {json.dumps(field['default'])}"
    return f"{text} (required)"


def _describe_model(annotation: Any, info: FieldInfo) -> str:
    if info.default_factory is not None:
        return f"{_show(annotation)} (default from a factory)"
    if info.is_required():
        return f"{_show(annotation)} (required)"
    return f"{_show(annotation)} with default {info.default!r}"


def model_problems(model: type[BaseModel], schema: Mapping[str, Any]) -> list[str]:
    """Each way ``model`` and the Avro record ``schema`` disagree, as a sentence; empty
    when a model instance always encodes under the schema and every decoded record
    validates as the model (up to the model's own value constraints).

    Compared field by field, nested records and arrays included: names, types
    (``long``/``int`` as ``int``, ``timestamp-millis`` as a datetime, ...), optional-ness
    (a ``["null", X]`` union is ``X | None``) and defaults. A model default made by a
    ``default_factory`` is accepted for a schema field without default: it only helps
    build events and never shows on the wire.
    """
    if schema.get("type") != "record":
        return [f"{model.__name__}: the schema is not a record"]
    names = _Names()
    names.define(schema, None)
    return _compare_record(model, tuple(schema["fields"]), model.__name__, names,
                           schema.get("namespace"))


def _compare_record(
    model: type[BaseModel],
    fields: tuple[Mapping[str, Any], ...],
    where: str,
    names: _Names,
    namespace: str | None,
) -> list[str]:
    problems: list[str] = []
    model_fields = model.model_fields
    schema_names = [str(f["name"]) for f in fields]
    for field in fields:
        name = str(field["name"])
        optional_branch = _optional_branch(field["type"])
        optional = optional_branch is not None
        avro = _avro_type(optional_branch if optional else field["type"], names, namespace)
        info = model_fields.get(name)
        if info is None:
            problems.append(f"{where}.{name}: schema has {_describe_schema(avro, optional, field)}"
                            ", model has no such field")
            continue
        problems.extend(_compare_field(field, avro, optional, info, f"{where}.{name}", names,
                                       namespace))
    for name, info in model_fields.items():
        if name not in schema_names:
            problems.append(f"{where}.{name}: model has {_describe_model(info.annotation, info)}"
                            ", schema has no such field")
    return problems


def _compare_field(
    field: Mapping[str, Any],
    avro: _AvroType,
    optional: bool,
    info: FieldInfo,
    where: str,
    names: _Names,
    namespace: str | None,
) -> list[str]:
    inner, model_optional = _unwrap_optional(info.annotation)
    mismatch = (f"{where}: schema says {_describe_schema(avro, optional, field)}, "
                f"model says {_describe_model(info.annotation, info)}")
    if optional != model_optional:
        return [mismatch]
    type_problem = _compare_type(avro, inner, where, names, namespace)
    if type_problem is not None:
        return type_problem or [mismatch]
    if not _defaults_agree(field, info):
        return [mismatch]
    return []


def _defaults_agree(field: Mapping[str, Any], info: FieldInfo) -> bool:
    if info.default_factory is not None:
        return "default" not in field
    if info.is_required():
        return "default" not in field
    if "default" not in field:
        return False
    model_default = info.default
    if isinstance(model_default, enum.Enum):
        model_default = model_default.value
    if isinstance(model_default, BaseModel):
        model_default = model_default.model_dump(mode="json")
    return bool(model_default == field["default"])


def _compare_type(
    avro: _AvroType, annotation: Any, where: str, names: _Names, namespace: str | None
) -> list[str] | None:
    """None when the types agree; ``[]`` for a plain mismatch (the caller words it);
    nested problems for records inside."""
    if avro.kind == "record":
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        nested = _compare_record(annotation, avro.fields, where, names, avro.name or namespace)
        return nested or None
    if avro.kind in ("array", "map"):
        origin = typing.get_origin(annotation)
        args = tuple(_bare(arg) for arg in typing.get_args(annotation))
        wanted = (list, tuple) if avro.kind == "array" else (dict,)
        if origin not in wanted or not args:
            return []
        item = args[-1] if avro.kind == "map" else args[0]
        if avro.kind == "map" and args[0] is not str:
            return []
        if avro.kind == "array" and origin is tuple and (len(args) != 2 or args[1] is not ...):
            return []
        inner, item_optional = _unwrap_optional(item)
        branch = _optional_branch(avro.items)
        if item_optional != (branch is not None):
            return []
        items = _avro_type(avro.items if branch is None else branch, names, namespace)
        suffix = "[]" if avro.kind == "array" else "{}"
        return _compare_type(items, inner, where + suffix, names, namespace)
    if avro.kind == "enum":
        return None if _enum_symbols(annotation) == set(avro.symbols) else []
    if avro.kind == "string" and _enum_symbols(annotation) is not None:
        return None  # a closed set of strings narrows the schema's string, like a pattern
    accepted = _PRIMITIVE_PYTHON.get(avro.kind) or next(
        (types_ for kind, types_ in _LOGICAL.values() if kind == avro.kind), ()
    )
    if annotation in accepted:
        return None
    # bool is an int in Python; an int field typed bool would pass isinstance checks.
    if isinstance(annotation, type) and annotation is not bool and issubclass(
        annotation, tuple(t for t in accepted if isinstance(t, type))
    ):
        return None
    return []


def _enum_symbols(annotation: Any) -> set[str] | None:
    """The strings a ``Literal[...]`` or ``Enum`` annotation allows, if all are strings."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
    elif typing.get_origin(annotation) is typing.Literal:
        values = list(typing.get_args(annotation))
    else:
        return None
    return set(values) if all(isinstance(v, str) for v in values) else None

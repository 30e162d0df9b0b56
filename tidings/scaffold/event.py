"""``tidings new event NAME --topic T``: the topology entry, a v1 schema, and its model."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tidings.scaffold.consumer import Scaffolded, sort_imports
from tidings.scaffold.edit import (
    ScaffoldError,
    TopologyDocument,
    flow_list,
    reload,
    transaction,
    write_new,
)
from tidings.topology import Topology, load_topology
from tidings.topology.model import EVENT_NAME, TOPIC_NAME

#: ``--fields`` type words -> (Avro type, Python annotation, imports the model needs)
FIELD_TYPES: dict[str, tuple[object, str, tuple[str, ...]]] = {
    "string": ("string", "str", ()),
    "int": ("int", "int", ()),
    "long": ("long", "int", ()),
    "boolean": ("boolean", "bool", ()),
    "double": ("double", "float", ()),
    "float": ("float", "float", ()),
    "bytes": ("bytes", "bytes", ()),
    "timestamp": ({"type": "long", "logicalType": "timestamp-millis"}, "AwareDatetime",
                  ("from pydantic import AwareDatetime",)),
    "date": ({"type": "int", "logicalType": "date"}, "date", ("from datetime import date",)),
    "uuid": ({"type": "string", "logicalType": "uuid"}, "UUID", ("from uuid import UUID",)),
}


def class_name(event: str) -> str:
    """``loyalty.points-earned`` -> ``LoyaltyPointsEarned``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._-]+", event) if part)


def parse_fields(spec: str) -> list[tuple[str, str, bool]]:
    """``order_id:string,note:string?`` -> [(name, type word, optional)]."""
    fields: list[tuple[str, str, bool]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, kind = item.partition(":")
        kind = kind.strip() or "string"
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if not name.isidentifier():
            raise ScaffoldError(f"--fields: {name!r} is not a field name")
        if kind not in FIELD_TYPES:
            raise ScaffoldError(f"--fields: {name}: unknown type {kind!r} (use one of "
                                f"{', '.join(FIELD_TYPES)}; '?' makes it optional)")
        if not sep and item != name:
            raise ScaffoldError(f"--fields: write {item!r} as name:type")
        fields.append((name, kind, optional))
    if len({f[0] for f in fields}) != len(fields):
        raise ScaffoldError("--fields: a field is named twice")
    return fields


def new_event(path: Path, name: str, topic: str, *, key: str | None = None,
              fields: str | None = None, publisher: str | None = None,
              doc: str | None = None) -> Scaffolded:
    """Add event ``name`` on ``topic`` (declared if new) with a v1 schema and a model."""
    topology = load_topology(path, check_imports=False)
    if not EVENT_NAME.match(name):
        raise ScaffoldError(f"{name!r} is not a valid event name (lowercase, e.g. "
                            "loyalty.points-earned)")
    if name in topology.events:
        raise ScaffoldError(f"{topology.path.name} already declares event {name!r}")
    if not TOPIC_NAME.match(topic):
        raise ScaffoldError(f"{topic!r} is not a valid topic name")
    key = key or "id"
    declared = parse_fields(fields) if fields else [(key, "string", False),
                                                    ("occurred_at", "timestamp", False)]
    if key not in {f[0] for f in declared}:
        declared.insert(0, (key, "string", False))
    cls = class_name(name)
    module = re.sub(r"\W", "_", name)
    root = topology.root
    schema_dir = root / _schema_dir(topology)
    schema_file = schema_dir / f"{name}.v1.avsc"
    package = schema_dir.name
    result = Scaffolded(f"events.{name}")
    with transaction(topology.path) as created:
        if not (schema_dir / "__init__.py").exists():
            write_new(schema_dir / "__init__.py", '"""Event schemas and their models."""\n',
                      created)
        write_new(schema_file, _schema(name, cls, declared, doc, topology.name), created)
        write_new(schema_dir / f"{module}.py", _model(name, cls, declared, doc), created)
        document = TopologyDocument(topology.path)
        if topic not in topology.topics:
            document.section("topics")[topic] = type(document.data)()
        entry = document.section("events")[name] = type(document.data)()
        entry["topic"] = topic
        entry["schema"] = schema_file.relative_to(root).as_posix()
        entry["key"] = key
        entry["model"] = f"{package}.{module}:{cls}"
        if publisher:
            producers = document.section("producers")
            if publisher in producers:
                producers[publisher]["publishes"].append(name)
            else:
                producers[publisher] = type(document.data)(publishes=flow_list([name]))
        topology.path.write_text(document.text(), encoding="utf-8")
        reload(topology.path)  # the model is checked against the schema here
        result.files = [p for p in created if p.is_file()]
    sort_imports(result.files, root)
    return result


def _schema_dir(topology: Topology) -> str:
    """Where the topology keeps its schemas (the folder of its first one), else schemas."""
    for spec in topology.events.values():
        return str(Path(spec.schema_path).parent)
    return "schemas"


def _schema(name: str, cls: str, fields: list[tuple[str, str, bool]], doc: str | None,
            topology: str) -> str:
    avro_fields = []
    for field, kind, optional in fields:
        avro_type = FIELD_TYPES[kind][0]
        entry: dict[str, object] = {"name": field,
                                    "type": ["null", avro_type] if optional else avro_type}
        if optional:
            entry["default"] = None
        avro_fields.append(entry)
    schema = {"type": "record", "name": cls,
              "namespace": f"{re.sub(r'[^A-Za-z0-9_]', '_', topology)}.events",
              "doc": doc or f"{name} (v1; describe what happened)",
              "fields": avro_fields}
    return json.dumps(schema, indent=2) + "\n"


def _model(name: str, cls: str, fields: list[tuple[str, str, bool]], doc: str | None) -> str:
    imports = {line for _, kind, _ in fields for line in FIELD_TYPES[kind][2]}
    stdlib = sorted(i for i in imports if not i.startswith("from pydantic"))
    third = sorted(i for i in imports if i.startswith("from pydantic"))
    lines = [f'"""The {name} event\'s model (generated by ``tidings new event``); it mirrors\n'
             f"its v1 schema, which ``tidings topology validate`` checks field by field.\n"
             '"""\n',
             "from __future__ import annotations\n"]
    blocks = [b for b in ("\n".join(stdlib), "\n".join([*third, "from tidings import Event"]))
              if b]
    lines.append("\n\n".join(blocks) + "\n")
    body = [f"\nclass {cls}(Event):",
            f'    """{doc or name + " (v1)"}"""',
            "",
            f'    event_type = "{name}"',
            "    schema_version = 1",
            ""]
    for field, kind, optional in fields:
        annotation = FIELD_TYPES[kind][1]
        body.append(f"    {field}: {annotation} | None = None" if optional
                    else f"    {field}: {annotation}")
    return "\n".join(lines) + "\n" + "\n".join(body) + "\n"

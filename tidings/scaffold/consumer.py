"""``tidings new consumer NAME``: the topology entry, a handler, and its TestBroker test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tidings.durations import parse_duration
from tidings.imports import import_reference
from tidings.scaffold.edit import (
    ScaffoldError,
    TopologyDocument,
    flow_list,
    flow_map,
    reload,
    transaction,
    write_new,
)
from tidings.scaffold.samples import valid_example
from tidings.topology import Topology, load_topology
from tidings.topology.model import SERVICE_NAME


@dataclass
class Scaffolded:
    """What a ``tidings new`` command added."""

    entry: str
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def module_name(name: str) -> str:
    """The Python package name of a group: ``loyalty-points`` -> ``loyalty_points``."""
    module = name.replace("-", "_")
    if not module.isidentifier() or module[0].isdigit():
        raise ScaffoldError(f"{name!r} does not make a Python package name; use letters, "
                            "digits, '-' and '_', starting with a letter")
    return module


def new_consumer(path: Path, name: str, subscribes: list[str], *, retry: list[str],
                 batch: bool = False, tests_dir: Path | None = None) -> Scaffolded:
    """Add consumer group ``name`` to the topology at ``path`` and scaffold its code."""
    topology = load_topology(path, check_imports=False)
    if not SERVICE_NAME.match(name):
        raise ScaffoldError(f"{name!r} is not a valid group name (letters, digits, '-', '_')")
    if name in topology.consumers:
        raise ScaffoldError(f"{topology.path.name} already declares consumer group {name!r}")
    module = module_name(name)
    unknown = [e for e in subscribes if e not in topology.events]
    if unknown or not subscribes:
        known = ", ".join(sorted(topology.events)) or "none"
        raise ScaffoldError(f"--subscribes: no event {', '.join(unknown) or '(none given)'} "
                            f"in {topology.path.name} (declared: {known}); "
                            "`tidings new event` adds one")
    try:
        tiers = [parse_duration(t).label for t in retry]
    except ValueError as exc:
        raise ScaffoldError(f"--retry: {exc}") from None
    root = topology.root
    package = root / "consumers" / module
    if package.exists():
        raise ScaffoldError(f"{package} already exists")
    function = "handle_batch" if batch else "handle"
    result = Scaffolded(f"consumers.{name}")
    tests = tests_dir or _tests_dir(root)
    with transaction(topology.path) as created:
        if not (root / "consumers" / "__init__.py").exists():
            write_new(root / "consumers" / "__init__.py",
                      '"""The consumer-group services."""\n', created)
        write_new(package / "__init__.py", _package_doc(name, subscribes, function), created)
        write_new(package / "handler.py", _handler(name, module, subscribes, batch), created)
        test_text, warnings = _test(topology, name, module, subscribes)
        write_new(tests / f"test_{module}_consumer.py", test_text, created)
        result.warnings += warnings
        document = TopologyDocument(topology.path)
        entry = document.section("consumers")
        spec = entry[name] = type(entry)()
        spec["subscribes"] = flow_list(subscribes)
        spec["handler"] = f"consumers.{module}:{function}"
        if tiers:
            spec["retry"] = flow_list(tiers)
        spec["dlq"] = True
        if batch:
            spec["batch"] = flow_map(max_events=500, max_wait="2s")
        topology.path.write_text(document.text(), encoding="utf-8")
        reload(topology.path)
        result.files = [p for p in created if p.is_file()]
    sort_imports(result.files, root)
    return result


def sort_imports(files: list[Path], root: Path) -> None:
    """Order the generated imports as the project's ruff does (first-party or not
    depends on the project), when ruff is installed; a best effort, never an error."""
    beside = Path(sys.executable).with_name("ruff")  # a virtualenv's, when not on PATH
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    sources = [str(p) for p in files if p.suffix == ".py"]
    if ruff is None or not sources:
        return
    subprocess.run([ruff, "check", "--quiet", "--fix", "--select", "I", *sources], cwd=root,
                   capture_output=True, timeout=60, check=False)


def _tests_dir(root: Path) -> Path:
    """Where pytest finds tests in this project: tests/unit, else tests."""
    unit = root / "tests" / "unit"
    return unit if unit.is_dir() else root / "tests"


def _package_doc(name: str, subscribes: list[str], function: str) -> str:
    return (f'"""The {name} consumer group: {", ".join(subscribes)}.\n\n'
            f"Run it with ``tidings run {name}``; its handler is in :mod:`.handler`.\n"
            '"""\n\n'
            "from __future__ import annotations\n\n"
            f"from consumers.{module_name(name)}.handler import {function}, setup\n\n"
            f'__all__ = ["{function}", "setup"]\n')


def _table(module: str) -> str:
    return f"{module}_seen"


def _handler(name: str, module: str, subscribes: list[str], batch: bool) -> str:
    table = _table(module)
    head = (
        f'"""The {name} group\'s handler (generated by ``tidings new consumer``).\n\n'
        "``ctx.db`` is the group's own database with a transaction open; the runtime\n"
        "records each event's idempotency key in that transaction, so what the handler\n"
        "writes there happens once however often Kafka redelivers the event. Raise\n"
        "``NonRetryableError`` for a failure no retry can fix; any other error moves the\n"
        "event to the next retry tier, then to the DLQ.\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
    )
    if batch:
        head += "from collections.abc import Sequence\n"
    imports = "from typing import Any\n\n"
    if batch:
        imports += ("from tidings import BatchContext\nfrom tidings.codec.events import Event\n"
                    "from tidings.db import Database\n")
    else:
        imports += ("from tidings import HandlerContext\nfrom tidings.codec.events import Event\n"
                    "from tidings.db import Database\n")
    setup = (
        "\n\ndef setup(connection: Any, database: Database) -> None:\n"
        '    """Create the group\'s tables; runs before the group consumes."""\n'
        f'    connection.execute("CREATE TABLE IF NOT EXISTS {table} "\n'
        '                       "(event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL)")\n'
    )
    subscribed = ", ".join(subscribes)
    if batch:
        doc = textwrap.fill(f"Handle a batch of {subscribed} in one transaction; replace "
                            f"with what {name} does.", 88, initial_indent="    \"\"\"",
                            subsequent_indent="    ")
        body = (
            "\n\ndef handle_batch(events: Sequence[Event], ctx: BatchContext) -> None:\n"
            f'{doc}"""\n'
            "    for item in ctx.items:\n"
            f'        ctx.db.execute(ctx.sql("INSERT INTO {table} (event_id, event_type) "\n'
            '                               "VALUES (?, ?)"),\n'
            "                       (item.meta.event_id, item.meta.event_type))\n"
        )
    else:
        doc = textwrap.fill(f"Handle one {subscribed} event; replace with what {name} does.",
                            88, initial_indent="    \"\"\"", subsequent_indent="    ")
        body = (
            "\n\ndef handle(event: Event, ctx: HandlerContext) -> None:\n"
            f'{doc}"""\n'
            f'    ctx.db.execute(ctx.sql("INSERT INTO {table} (event_id, event_type) '
            'VALUES (?, ?)"),\n'
            "                   (ctx.event_id, ctx.event_type))\n"
        )
    return head + imports + setup + body


def _test(topology: Topology, name: str, module: str,
          subscribes: list[str]) -> tuple[str, list[str]]:
    """The generated test module, and warnings about events it cannot build."""
    warnings: list[str] = []
    imports: dict[str, set[str]] = {}
    tests: list[str] = []
    for event in subscribes:
        reference = topology.events[event].model
        if reference is None:
            warnings.append(f"{event} has no model: the generated test does not publish it "
                            "(declare model: in topology.yaml to test it through TestBroker)")
            continue
        model = import_reference(reference, topology.root, "model")
        schema = json.loads(topology.schema_file(event).read_text(encoding="utf-8"))
        record, valid = valid_example(model, schema)
        if not valid:
            warnings.append(f"the example {event} in the generated test is not valid for "
                            f"{reference}: fill in real values")
        owner, cls = reference.split(":")
        imports.setdefault(owner, set()).add(cls)
        slug = re.sub(r"\W", "_", event)
        literal = _literal(record)
        tests.append(
            f"\n\ndef test_{module}_handles_{slug}(tidings_test_broker: TestBroker) -> None:\n"
            "    broker = tidings_test_broker\n"
            f"    event = {cls}.model_validate({literal})\n"
            "    event_id = broker.publish(event)\n"
            "    broker.publish(event, event_id=event_id)  # a redelivery is skipped\n\n"
            f'    run = broker.run("{name}")\n\n'
            '    assert run.outcomes_of(event_id) == ["processed", "duplicate"]\n'
            f'    assert broker.query("{name}", "SELECT event_type FROM {_table(module)} "\n'
            f'                        "WHERE event_id = ?", (event_id,)) == [("{event}",)]\n')
    lines = [
        f'"""The {name} consumer group through TestBroker: its real processing, no Kafka.\n\n'
        "Generated by ``tidings new consumer``; ``tidings_test_broker`` comes from the\n"
        "tidings pytest plugin. Time moves only with ``broker.advance(\"10s\")``.\n"
        '"""\n',
        "from __future__ import annotations\n",
    ]
    imports.setdefault("tidings.testing", set()).add("TestBroker")
    lines.append("\n".join(f"from {owner} import {', '.join(sorted(names))}"
                           for owner, names in sorted(imports.items())) + "\n")
    return "\n".join(lines) + "".join(tests), warnings


def _literal(record: object) -> str:
    text = repr(record)
    if len(text) <= 60:
        return text
    assert isinstance(record, dict)
    items = ",\n".join(f"        {key!r}: {value!r}" for key, value in record.items())
    return "{\n" + items + ",\n    }"

"""``tidings schemas check|register``: may the schema files be published as they are?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidings.cli._environment_arg import add_env_argument
from tidings.codec import compat
from tidings.codec.catalogue import SchemaCatalogue, discover_versions
from tidings.errors import ConfigError
from tidings.settings import Settings
from tidings.topology import Topology, TopologyInvalid, load_topology
from tidings.topology.load import display_name

_NO_REGISTRY = ("no schema registry is configured: set cluster.schema_registry_url in "
                "{file} or TIDINGS_SCHEMA_REGISTRY_URL, or pass --registry URL")


def register(sub: Any) -> None:
    """Add ``schemas check`` and ``schemas register`` to the ``tidings`` parser."""
    parser = sub.add_parser("schemas", help="check event schemas and their evolution")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--file", type=Path, default=None,
                       help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")
        add_env_argument(p)
        p.add_argument("--no-imports", action="store_true",
                       help="do not import event models and consumer handlers")

    check = actions.add_parser(
        "check",
        help="every schema version is compatible with the earlier ones; models match",
    )
    common(check)
    check.add_argument(
        "--registry", nargs="?", const="", default=None, metavar="URL",
        help="also ask the schema registry (default URL: the topology's) about every "
             "version it does not hold yet, and compare its verdict with the local one")
    check.set_defaults(func=cmd_check)

    reg = actions.add_parser(
        "register",
        help="register every event's schema versions in the schema registry",
        description="Set each event's subject (<topic>-<record full name>) to its "
                    "compatibility level, made transitive, and register its versions up "
                    "to the one the topology writes. Idempotent.",
    )
    common(reg)
    reg.add_argument("--registry", default=None, metavar="URL",
                     help="the registry's Confluent-compatible URL (default: the topology's)")
    reg.set_defaults(func=cmd_register)


def _topology_path(args: argparse.Namespace) -> Path:
    return Path(args.file) if args.file else Settings().topology


def _registry_url(args: argparse.Namespace, topology: Topology) -> str:
    url = args.registry or topology.registry_url
    if not url:
        raise ConfigError(_NO_REGISTRY.format(file=display_name(topology.path)))
    return str(url).rstrip("/")


def _load(args: argparse.Namespace, *, check_compatibility: bool = True) -> Topology | None:
    try:
        return load_topology(_topology_path(args), check_imports=not args.no_imports,
                             check_compatibility=check_compatibility, env=args.env)
    except TopologyInvalid as exc:
        for problem in exc.problems:
            print(problem.render(exc.filename), file=sys.stderr)
        return None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 1 listing every problem on stderr, one per line; else print a summary."""
    with_registry = args.registry is not None
    # Loading runs the compatibility and model checks along with everything else: a
    # topology that fails validation cannot have publishable schemas. With --registry
    # the local verdict is reported beside the registry's instead.
    topology = _load(args, check_compatibility=not with_registry)
    if topology is None:
        return 1
    findings = compat.check_events(topology.declared_events())
    for finding in findings:
        print(str(finding), file=sys.stderr)
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    registry_note = ""
    if with_registry:
        refused, registry_note = _check_registry(_registry_url(args, topology), topology)
        if refused or errors:
            return 1
    elif errors:
        return 1
    versions = sum(
        len(discover_versions(topology.root / spec.schema_path))
        for spec in topology.events.values()
    )
    print(f"{display_name(topology.path)}: schemas compatible — "
          f"{_plural(len(topology.events), 'event')}, {_plural(versions, 'version')}"
          + (f", {_plural(len(warnings), 'warning')}" if warnings else "")
          + registry_note)
    return 0


def _check_registry(url: str, topology: Topology) -> tuple[int, str]:
    """Print the registry's verdict per new version next to the local one.

    Returns how many versions the registry refuses (or the two checks disagree on),
    and a note for the summary line.
    """
    from tidings.codec.registry import make_client
    from tidings.codec.subjects import check_with_registry

    declared = topology.declared_events()
    catalogue = SchemaCatalogue.from_events(declared)
    modes = {item.name: item.compatibility for item in declared}
    verdicts, warnings = check_with_registry(catalogue, declared, make_client(url), url=url)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    bad = 0
    checked = 0
    unregistered: dict[str, list[str]] = {}
    for verdict in verdicts:
        label = f"{verdict.event} v{verdict.version}"
        where = f"under subject {verdict.subject!r} ({verdict.level})"
        if verdict.compatible is None:
            unregistered.setdefault(verdict.subject, []).append(label)
            continue
        checked += 1
        older = {v.version: v.raw for v in catalogue.versions(verdict.event)
                 if v.version <= verdict.version}
        local_ok = not compat.compatibility_problems(older, modes[verdict.event],
                                                     only=verdict.version)
        registry = "accepts" if verdict.compatible else "refuses"
        if verdict.compatible == local_ok:
            local = "the local check agrees" + ("" if local_ok else " (see above)")
            print(f"{label}: the registry {registry} it {where}; {local}",
                  file=sys.stdout if local_ok else sys.stderr)
        else:
            print(f"{label}: the registry {registry} it {where}, but the local check "
                  f"{'accepts' if local_ok else 'refuses'} it", file=sys.stderr)
        if not (verdict.compatible and local_ok):
            bad += 1
    for subject, labels in unregistered.items():
        print(f"{', '.join(labels)}: not in the registry yet, and subject {subject!r} "
              "holds no version to check against; `tidings schemas register` registers")
    if checked:
        note = f"; the registry at {url} agrees on {_plural(checked, 'new version')}"
    elif unregistered:
        note = f"; nothing registered at {url} to check against yet"
    else:
        note = f"; the registry at {url} holds every version"
    return bad, note


def cmd_register(args: argparse.Namespace) -> int:
    """Register every event's versions; one line per event, errors on stderr."""
    from tidings.codec.registry import make_client
    from tidings.codec.subjects import REGISTRY_LEVELS, register_schemas

    topology = _load(args)
    if topology is None:
        return 1
    url = _registry_url(args, topology)
    declared = topology.declared_events()
    catalogue = SchemaCatalogue.from_events(declared)
    done = register_schemas(catalogue, declared, make_client(url), url=url)
    modes = {item.name: item.compatibility for item in declared}
    for item in declared:
        mine = [r for r in done if r.event == item.name]
        if not mine:
            continue
        parts = []
        for r in mine:
            if r.outcome == "skipped":
                parts.append(f"v{r.version} skipped (a newer version is registered)")
            else:
                state = "registered" if r.outcome == "registered" else "already registered"
                parts.append(f"v{r.version} id {r.schema_id} ({state})")
        print(f"{item.name} -> {mine[0].subject} ({REGISTRY_LEVELS[modes[item.name]]}): "
              + ", ".join(parts))
    new = sum(1 for r in done if r.outcome == "registered")
    print(f"{display_name(topology.path)}: {_plural(new, 'schema version')} registered, "
          f"{sum(1 for r in done if r.outcome == 'present')} already there, at {url}")
    return 0

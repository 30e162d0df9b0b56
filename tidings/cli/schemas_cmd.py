"""``tidings schemas check``: may the schema files be published as they are?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidings.cli._environment_arg import add_env_argument
from tidings.codec import compat
from tidings.codec.catalogue import discover_versions
from tidings.settings import Settings
from tidings.topology import TopologyInvalid, load_topology
from tidings.topology.load import display_name


def register(sub: Any) -> None:
    """Add ``schemas check`` to the ``tidings`` parser."""
    parser = sub.add_parser("schemas", help="check event schemas and their evolution")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check",
        help="every schema version is compatible with the earlier ones; models match",
    )
    check.add_argument("-f", "--file", type=Path, default=None,
                       help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")
    add_env_argument(check)
    check.add_argument("--no-imports", action="store_true",
                       help="do not import event models and consumer handlers")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 1 listing every problem on stderr, one per line; else print a summary."""
    path = Path(args.file) if args.file else Settings().topology
    try:
        # Loading runs the compatibility and model checks along with everything else:
        # a topology that fails validation cannot have publishable schemas.
        topology = load_topology(path, check_imports=not args.no_imports, env=args.env)
    except TopologyInvalid as exc:
        for problem in exc.problems:
            print(problem.render(exc.filename), file=sys.stderr)
        return 1
    findings = compat.check_events(topology.declared_events())
    warnings = [f for f in findings if f.severity == "warning"]
    for finding in warnings:
        print(str(finding), file=sys.stderr)
    versions = sum(
        len(discover_versions(topology.root / spec.schema_path))
        for spec in topology.events.values()
    )
    events = len(topology.events)
    print(f"{display_name(topology.path)}: schemas compatible — {events} "
          f"event{'s' if events != 1 else ''}, {versions} "
          f"version{'s' if versions != 1 else ''}"
          + (f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""))
    return 0

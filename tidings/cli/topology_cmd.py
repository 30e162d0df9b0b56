"""``tidings topology validate|plan|apply``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tidings.audit import recorded
from tidings.errors import TidingsError
from tidings.replay.cluster import Cluster
from tidings.settings import Settings
from tidings.topology import Topology, load_topology, sync
from tidings.topology.load import display_name
from tidings.topology.plan import Grade, Plan

_MARK = {"create": "+", "add-partitions": "~", "set-config": "~", "unset-config": "~",
         "delete": "-"}


def register(sub: Any) -> None:
    parser = sub.add_parser("topology", help="validate, plan and apply topology.yaml")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--file", type=Path, default=None,
                       help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")

    validate = actions.add_parser("validate", help="check the file; no cluster needed")
    common(validate)
    validate.add_argument("--no-imports", action="store_true",
                          help="do not import consumer handlers")
    validate.set_defaults(func=cmd_validate)

    plan = actions.add_parser("plan", help="diff the file against the live cluster")
    common(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=cmd_plan)

    apply = actions.add_parser("apply", help="make the cluster match the file")
    common(apply)
    apply.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument("--allow-destructive", action="store_true",
                       help="allow changes graded destructive (topic deletion, data loss)")
    apply.set_defaults(func=cmd_apply)


def topology_path(args: argparse.Namespace) -> Path:
    return Path(args.file) if args.file else Settings().topology


def cmd_validate(args: argparse.Namespace) -> int:
    topology = load_topology(topology_path(args), check_imports=not args.no_imports)
    print(f"{display_name(topology.path)}: valid — {_census(topology)}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    topology = load_topology(topology_path(args))
    view = sync.connect(topology)
    the_plan = sync.plan(view)
    if args.json:
        print(json.dumps({"bootstrap": view.bootstrap, "brokers": view.state.brokers,
                          **the_plan.to_dict()}, indent=2))
    else:
        print(render_plan(the_plan, view))
    return 1 if the_plan.refusals else 0


def cmd_apply(args: argparse.Namespace) -> int:
    topology = load_topology(topology_path(args))
    view = sync.connect(topology)
    the_plan = sync.plan(view)
    print(render_plan(the_plan, view))
    if the_plan.refusals:
        raise TidingsError("nothing applied: the plan has refused changes (see above)")
    if the_plan.destructive and not args.allow_destructive:
        raise TidingsError(
            f"nothing applied: {len(the_plan.destructive)} destructive change(s); "
            "re-run with --allow-destructive if you mean it"
        )
    if not the_plan.changes:
        # Still record ownership, so topics created before the first apply are managed.
        sync.apply(view, the_plan)
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise TidingsError("nothing applied: not a terminal to confirm on; pass --yes")
        answer = input(f"Apply {len(the_plan.changes)} change(s) to {view.bootstrap}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing applied.")
            return 1
    with recorded(Cluster(topology), action="topology.apply", target=topology.name,
                  plan=render_plan(the_plan, view)) as outcome:
        result = sync.apply(view, the_plan)
        outcome.append(f"applied {len(result.done)} change(s)")
    print(f"Applied {len(result.done)} change(s).")
    return 0


def render_plan(the_plan: Plan, view: sync.ClusterView) -> str:
    brokers = view.state.brokers
    lines = [f"Plan for {display_name(view.topology.path)} against {view.bootstrap} "
             f"({brokers} broker{'s' if brokers != 1 else ''}):"]
    if the_plan.empty:
        lines.append(f"  No changes. The cluster matches the file "
                     f"({the_plan.topics_in_sync} topics in sync).")
        return "\n".join(lines)
    explained: set[tuple[str, str]] = set()
    for change in the_plan.changes:
        lines.append(f"  {_MARK[change.kind.value]} {change.summary}  [{change.grade.value}]")
        # The same risk repeats across a topic and its retry/DLQ copies; say it once.
        if change.grade is not Grade.SAFE and (change.kind, change.reason) not in explained:
            explained.add((change.kind, change.reason))
            lines.append(f"      {change.reason}")
    for refusal in the_plan.refusals:
        line = view.topology.line_of(refusal.source_path)
        where = f"{display_name(view.topology.path)}:{line}: " if line else ""
        lines.append(f"  ! {where}{refusal.message}")
    counts = the_plan.counts()
    summary = ", ".join(f"{n} {grade}" for grade, n in counts.items() if n)
    tail = f"{len(the_plan.changes)} change(s)" + (f": {summary}" if summary else "")
    if the_plan.refusals:
        tail += f"; {len(the_plan.refusals)} refused"
    lines.append(f"{tail}; {the_plan.topics_in_sync} topic(s) already in sync.")
    return "\n".join(lines)


def _census(topology: Topology) -> str:
    derived = len(topology.desired_topics()) - len(topology.topics)
    return (f"{len(topology.topics)} topics (+{derived} retry/DLQ/replay), "
            f"{len(topology.events)} events, {len(topology.producers)} producers, "
            f"{len(topology.consumers)} consumers")

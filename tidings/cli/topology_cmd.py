"""``tidings topology validate|lint|show|plan|apply|diff``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidings.audit import recorded
from tidings.cli._environment_arg import add_env_argument
from tidings.errors import TidingsError
from tidings.replay.cluster import Cluster
from tidings.settings import Settings
from tidings.topology import Topology, load_topology, sync
from tidings.topology.diff import diff_against_ref, schema_changes_against_ref
from tidings.topology.environments import LOCAL
from tidings.topology.lint import lint_by_default, lint_topology, strict
from tidings.topology.load import (
    TopologyInvalid,
    display_name,
    load_environments,
    resolve_file,
)
from tidings.topology.plan import Grade, Plan
from tidings.topology.review import Located, Review, items_from_plan, text_rows
from tidings.topology.show import render_resolved
from tidings.topology.source import Problem

_MARK = {"create": "+", "add-partitions": "~", "set-config": "~", "unset-config": "~",
         "delete": "-", "set-partitioner": "~", "add-acl": "+", "remove-acl": "-"}
FORMATS = ("text", "markdown", "json")


def register(sub: Any) -> None:
    parser = sub.add_parser("topology", help="validate, plan and apply topology.yaml")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(p: argparse.ArgumentParser, env_help: str | None = None) -> None:
        p.add_argument("-f", "--file", type=Path, default=None,
                       help="the topology file (default: $TIDINGS_TOPOLOGY or ./topology.yaml)")
        if env_help:
            add_env_argument(p, env_help)
        else:
            add_env_argument(p)

    def linting(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lint", action=argparse.BooleanOptionalAction, default=None,
                       help="the production lint (default: on for every environment not "
                            "named local)")
        p.add_argument("--strict", action="store_true",
                       help="lint warnings are errors (exit 1)")

    def reporting(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=FORMATS, default="text",
                       help="text (default), markdown for a pull request comment, or json")
        p.add_argument("--detailed-exitcode", action="store_true",
                       help="exit 0 when nothing changes, 2 for changes, 3 when a change is "
                            "destructive (1 stays an error)")

    validate = actions.add_parser("validate", help="check the file in every environment; "
                                  "no cluster needed")
    common(validate, "validate only this environment (default: every one the file declares)")
    validate.add_argument("--no-imports", action="store_true",
                          help="do not import consumer handlers")
    linting(validate)
    validate.set_defaults(func=cmd_validate)

    lint = actions.add_parser("lint", help="production-grade settings: replication, "
                              "min.insync.replicas, retention against retries and DLQs")
    common(lint, "lint this environment, local too (default: every one not named local)")
    lint.add_argument("--strict", action="store_true", help="warnings are errors (exit 1)")
    lint.set_defaults(func=cmd_lint)

    show = actions.add_parser("show", help="the declaration as an environment resolves it")
    common(show)
    show.set_defaults(func=cmd_show)

    plan = actions.add_parser("plan", help="diff the file against the live cluster")
    common(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON "
                      "(the same as --format json)")
    reporting(plan)
    plan.add_argument("--base", metavar="GIT_REF", default=None,
                      help="also show the schema changes since this git ref, checked as "
                           "`tidings schemas check` checks them")
    linting(plan)
    plan.set_defaults(func=cmd_plan)

    apply = actions.add_parser("apply", help="make the cluster match the file")
    common(apply)
    apply.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument("--allow-destructive", action="store_true",
                       help="allow changes graded destructive (topic deletion, data loss)")
    linting(apply)
    apply.set_defaults(func=cmd_apply)

    diff = actions.add_parser("diff", help="what this branch changes in the declaration, "
                              "against a git ref; no cluster needed")
    diff.add_argument("base_ref", metavar="BASE_REF",
                      help="the git ref to compare with, e.g. origin/main")
    common(diff)
    reporting(diff)
    diff.set_defaults(func=cmd_diff)


def topology_path(args: argparse.Namespace) -> Path:
    return Path(args.file) if args.file else Settings().topology


def _load(args: argparse.Namespace, **kwargs: Any) -> Topology:
    return load_topology(topology_path(args), env=args.env, **kwargs)


def cmd_validate(args: argparse.Namespace) -> int:
    envs = [args.env] if args.env else None
    topologies = load_environments(topology_path(args), check_imports=not args.no_imports,
                                   envs=envs)
    _lint(topologies, args.lint, args.strict)
    names = ", ".join(t.env for t in topologies)
    topology = topologies[0]
    where = f"in {names}" if len(topologies) > 1 or topology.env != LOCAL else ""
    print(f"{display_name(topology.path)}: valid{' ' + where if where else ''} — "
          f"{_census(topology)}")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    path = topology_path(args)
    declared = resolve_file(path, LOCAL).declared
    envs = [args.env] if args.env else [e for e in declared if e != LOCAL]
    filename = display_name(path.resolve())
    if not envs:
        print(f"{filename}: no environment besides local to lint (pass --env local to lint "
              "that one)")
        return 0
    topologies = load_environments(path, check_imports=False, envs=envs)
    warnings = _lint(topologies, True, args.strict)
    count = len(warnings)
    print(f"{filename}: lint of {', '.join(envs)}: "
          + (f"{count} warning{'s' if count != 1 else ''}" if count else "no warnings"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    topology = _load(args)
    resolution = resolve_file(topology.path, topology.env)
    print(render_resolved(resolution, topology, display_name(topology.path)), end="")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    topology = _load(args)
    warnings = _lint([topology], args.lint, args.strict)
    view = sync.connect(topology)
    the_plan = sync.plan(view)
    review = plan_review(the_plan, view, warnings)
    schemas = schema_changes_against_ref(topology, args.base) if args.base else None
    if schemas is not None:
        review.items += schemas.items
        review.notes += schemas.notes
    fmt = "json" if args.json else args.format
    if fmt == "json":
        extra = {"schemas": [i for i in review.to_dict()["changes"] if i["resource"] == "schema"]
                 } if schemas is not None else {}
        print(json.dumps({"bootstrap": view.bootstrap, "brokers": view.state.brokers,
                          **the_plan.to_dict(), **extra}, indent=2))
    elif fmt == "markdown":
        print(review.markdown(), end="")
    else:
        print(render_plan(the_plan, view))
        if schemas is not None and schemas.items:
            print(f"Schemas (since {args.base}):")
            print("\n".join(text_rows(schemas.items)))
    return review.exit_code(args.detailed_exitcode)


def plan_review(the_plan: Plan, view: sync.ClusterView, warnings: Sequence[Problem]) -> Review:
    """The plan as a reviewer reads it (``--format markdown``)."""
    topology = view.topology
    filename = display_name(topology.path)
    brokers = view.state.brokers
    refusals = []
    for refusal in the_plan.refusals:
        line = topology.line_of(topology.refusal_source(refusal.source_path))
        refusals.append(Located(refusal.message, f"{filename}:{line}" if line else ""))
    return Review(
        title="Topology plan",
        subject=f"`{topology.name}`, environment `{topology.env}`",
        against=f"against `{view.bootstrap}` ({brokers} broker{'s' if brokers != 1 else ''})",
        items=items_from_plan(the_plan, topology),
        refusals=refusals,
        warnings=[Located(w.message, f"{filename}:{w.line}" if w.line else filename)
                  for w in warnings],
        in_sync=the_plan.topics_in_sync,
        acls_in_sync=the_plan.acls_in_sync,
    )


def cmd_apply(args: argparse.Namespace) -> int:
    topology = _load(args)
    _lint([topology], args.lint, args.strict)
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


def cmd_diff(args: argparse.Namespace) -> int:
    head = _load(args, check_imports=False)
    result = diff_against_ref(head, args.base_ref)
    review = Review(
        title="Topology diff",
        subject=f"`{head.name}`, environment `{head.env}`",
        against=f"against `{args.base_ref}`",
        items=result.items, refusals=result.refusals, notes=result.notes,
    )
    if args.format == "json":
        print(json.dumps({"base": args.base_ref, "env": head.env, **review.to_dict()},
                         indent=2))
    elif args.format == "markdown":
        print(review.markdown(), end="")
    else:
        print(review.text())
    return review.exit_code(args.detailed_exitcode)


def _lint(topologies: Sequence[Topology], enabled: bool | None, strict_mode: bool
          ) -> list[Problem]:
    """Lint each topology whose environment asks for it; print warnings on stderr, or
    raise them as errors under ``--strict``."""
    warnings: list[Problem] = []
    for topology in topologies:
        if enabled if enabled is not None else lint_by_default(topology.env):
            warnings += lint_topology(topology)
    if not warnings:
        return warnings
    filename = display_name(topologies[0].path)
    if strict_mode:
        raise TopologyInvalid(filename, strict(warnings))
    for warning in sorted(warnings, key=lambda w: (w.line or 0, w.message)):
        print(warning.render(filename), file=sys.stderr)
    return warnings


def render_plan(the_plan: Plan, view: sync.ClusterView) -> str:
    brokers = view.state.brokers
    env = view.topology.env
    shown_env = f" ({env})" if env != LOCAL else ""
    lines = [f"Plan for {display_name(view.topology.path)}{shown_env} against {view.bootstrap} "
             f"({brokers} broker{'s' if brokers != 1 else ''}):"]
    if the_plan.empty:
        lines.append(f"  No changes. The cluster matches the file "
                     f"({the_plan.in_sync_text()}).")
        return "\n".join(lines)
    explained: set[tuple[str, str]] = set()
    for change in the_plan.changes:
        lines.append(f"  {_MARK[change.kind.value]} {change.summary}  [{change.grade.value}]")
        # The same risk repeats across a topic and its retry/DLQ copies; say it once.
        if change.grade is not Grade.SAFE and (change.kind, change.reason) not in explained:
            explained.add((change.kind, change.reason))
            lines.append(f"      {change.reason}")
    for refusal in the_plan.refusals:
        line = view.topology.line_of(view.topology.refusal_source(refusal.source_path))
        where = f"{display_name(view.topology.path)}:{line}: " if line else ""
        lines.append(f"  ! {where}{refusal.message}")
    counts = the_plan.counts()
    summary = ", ".join(f"{n} {grade}" for grade, n in counts.items() if n)
    tail = f"{len(the_plan.changes)} change(s)" + (f": {summary}" if summary else "")
    if the_plan.refusals:
        tail += f"; {len(the_plan.refusals)} refused"
    acls = f", {the_plan.acls_in_sync} ACL(s)" if the_plan.acls_in_sync is not None else ""
    lines.append(f"{tail}; {the_plan.topics_in_sync} topic(s){acls} already in sync.")
    return "\n".join(lines)


def _census(topology: Topology) -> str:
    derived = len(topology.desired_topics()) - len(topology.topics)
    scheduling = (f", {len(topology.schedules)} schedules" if topology.schedules else "")
    return (f"{len(topology.topics)} topics (+{derived} retry/DLQ/replay/scheduling/replies), "
            f"{len(topology.events)} events, {len(topology.producers)} producers, "
            f"{len(topology.consumers)} consumers{scheduling}")


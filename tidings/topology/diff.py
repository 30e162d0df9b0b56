"""What a branch changes in the declaration itself, against a git ref; no cluster needed.

Topics are compared by planning the branch's topology against the base's, as if
the base had been applied: the same grades as ``plan``, before any cluster is
reachable. Events, schema versions, services and cluster settings are compared
entry by entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tidings.codec import compat
from tidings.codec.catalogue import discover_versions, load_version, version_of
from tidings.durations import Duration
from tidings.topology import gitbase
from tidings.topology.environments import LOCAL
from tidings.topology.load import TopologyInvalid, display_name, load_topology, resolve_file
from tidings.topology.plan import (
    ClusterState,
    Grade,
    LiveConfig,
    LiveTopic,
    Resource,
    plan_topology,
)
from tidings.topology.review import Located, ReviewItem, items_from_plan
from tidings.topology.topology import Topology


@dataclass
class DeclarationDiff:
    """The branch's changes to the declaration, graded like a plan."""

    items: list[ReviewItem] = field(default_factory=list)
    refusals: list[Located] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def diff_against_ref(head: Topology, ref: str) -> DeclarationDiff:
    """Compare ``head`` (the working tree's file, validated) with the file at git ``ref``."""
    with gitbase.checkout_at(head.path, ref) as base_path:
        if base_path is None:
            result = diff_topologies(head, None)
            result.notes.append(f"{display_name(head.path)} does not exist at `{ref}`: "
                                "everything is new")
            return result
        if head.env != LOCAL and head.env not in resolve_file(base_path, LOCAL).declared:
            result = diff_topologies(head, None)
            result.notes.append(f"environment `{head.env}` is new in this branch: everything "
                                "it declares is new")
            return result
        return diff_topologies(head, _load_base(base_path, head.env, ref))


def schema_changes_against_ref(head: Topology, ref: str) -> DeclarationDiff:
    """Only the schema rows of :func:`diff_against_ref` (what ``plan --base`` shows)."""
    whole = diff_against_ref(head, ref)
    whole.items = [i for i in whole.items if i.resource is Resource.SCHEMA]
    whole.refusals = []
    return whole


def _load_base(path: Path, env: str, ref: str) -> Topology:
    try:
        # Handlers are the branch's business (validate imports them); the base is data.
        return load_topology(path, env=env, check_imports=False)
    except TopologyInvalid as exc:
        raise TopologyInvalid(f"{ref}:{path.name}", exc.problems) from None


def diff_topologies(head: Topology, base: Topology | None) -> DeclarationDiff:
    """Every change from ``base`` (None: an empty file) to ``head``."""
    result = DeclarationDiff()
    plan = plan_topology(head.desired_topics(), _as_applied(base))
    result.items += items_from_plan(plan, head)
    filename = display_name(head.path)
    for refusal in plan.refusals:
        line = head.line_of(head.refusal_source(refusal.source_path))
        result.refusals.append(Located(refusal.message, f"{filename}:{line}" if line else ""))
    result.items += _schema_items(head, base)
    result.items += _event_items(head, base)
    result.items += _service_items(head, base)
    result.items += _cluster_items(head, base)
    return result


def _as_applied(base: Topology | None) -> ClusterState:
    """The cluster as it would be had ``base`` been applied (and only that)."""
    if base is None:
        return ClusterState(brokers=0, topics={})
    topics = {
        t.name: LiveTopic(t.name, t.partitions, t.replication_factor,
                          {k: LiveConfig(v, overridden=True) for k, v in t.config.items()})
        for t in base.desired_topics()
    }
    return ClusterState(brokers=0, topics=topics, managed=frozenset(topics))


def _schema_items(head: Topology, base: Topology | None) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    for event in head.events:
        writes = _version(head.schema_file(event))
        path = head.events[event].schema_path
        if base is None or event not in base.events:
            items.append(ReviewItem(Resource.SCHEMA, event, Grade.SAFE,
                                    f"new event, writes v{writes} ({path})",
                                    _verdict(head, event), mark="+"))
            continue
        items += _version_items(head, base, event)
    return items


def _version_items(head: Topology, base: Topology, event: str) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    head_versions = discover_versions(head.schema_file(event))
    base_versions = discover_versions(base.schema_file(event))
    was, now = _version(base.schema_file(event)), _version(head.schema_file(event))

    def row(grade: Grade, change: str, reason: str, mark: str = "~") -> None:
        items.append(ReviewItem(Resource.SCHEMA, event, grade, change, reason, mark=mark))

    for number, old_file in sorted(base_versions.items()):
        new_file = head_versions.get(number)
        if new_file is None:
            row(Grade.DESTRUCTIVE, f"v{number} removed ({old_file.name})",
                f"events written with v{number} can no longer be decoded", "-")
        elif _fingerprint(event, number, old_file) != _fingerprint(event, number, new_file):
            row(Grade.DESTRUCTIVE, f"v{number} edited in place ({new_file.name})",
                f"events already written with v{number} carry the old fingerprint and can no "
                f"longer be decoded; add v{max(head_versions) + 1} instead")
        elif old_file.read_bytes() != new_file.read_bytes():
            row(Grade.CAUTION, f"v{number} edited in place ({new_file.name})",
                "docs, defaults or order only: the wire form is unchanged, but readers "
                "may fill missing fields differently")
    for number, new_file in sorted(head_versions.items()):
        if number not in base_versions and number != now:
            row(Grade.SAFE, f"v{number} added ({new_file.name})",
                f"staged: publishers keep writing v{now}; {_verdict(head, event)}", "+")
    if now != was:
        mode = head.events[event].compatibility
        if mode == "NONE":
            grade, reason = Grade.CAUTION, (f"compatibility NONE: not checked; consumers on "
                                            f"v{was} may fail to read v{now}")
        elif now < was:
            grade, reason = Grade.CAUTION, (f"publishers go back to v{now}; "
                                            f"{_verdict(head, event)}")
        else:
            grade, reason = Grade.SAFE, _verdict(head, event)
        row(grade, f"writes v{was} → v{now} ({head.events[event].schema_path})", reason)
    return items


def _version(path: Path) -> int:
    named = version_of(path)
    return named[1] if named else 0


def _fingerprint(event: str, number: int, path: Path) -> bytes:
    return load_version(event, number, path).fingerprint


def _verdict(topology: Topology, event: str) -> str:
    """What ``tidings schemas check`` says of the event's versions, in one phrase."""
    declared = next(d for d in topology.declared_events() if d.name == event)
    findings = compat.check_event(declared)
    errors = [f.message for f in findings if f.severity == "error"]
    if errors:
        return "schemas check fails: " + "; ".join(errors)
    versions = sorted(discover_versions(declared.schema_file))
    mode = declared.compatibility
    if len(versions) < 2:
        return "schemas check passes (first version)"
    if mode == "NONE":
        return "schemas check: compatibility NONE, not checked"
    listed = ", ".join(f"v{n}" for n in versions)
    return f"schemas check passes: {listed} are {mode} compatible"


def _event_items(head: Topology, base: Topology | None) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    old = base.events if base else {}
    for event, spec in head.events.items():
        if event not in old:
            items.append(ReviewItem(Resource.EVENT, event, Grade.SAFE,
                                    f"new event on {spec.topic}", mark="+"))
            continue
        was = old[event]
        if was.topic != spec.topic:
            items.append(ReviewItem(
                Resource.EVENT, event, Grade.CAUTION, f"topic {was.topic} → {spec.topic}",
                f"new events go to {spec.topic}; consumers of {was.topic} stop seeing them, "
                "and the events already written stay where they are"))
        if was.key != spec.key:
            items.append(ReviewItem(
                Resource.EVENT, event, Grade.DESTRUCTIVE, f"key {was.key} → {spec.key}",
                "events of one entity may now land on other partitions: their order across "
                "the change is lost"))
        if was.compatibility != spec.compatibility:
            items.append(ReviewItem(
                Resource.EVENT, event, Grade.CAUTION,
                f"compatibility {was.compatibility} → {spec.compatibility}",
                "changes which schema versions may follow"))
    for event in old:
        if event not in head.events:
            items.append(ReviewItem(
                Resource.EVENT, event, Grade.CAUTION, "event removed",
                "no service may publish it any more; events already written stay on their "
                "topic", mark="-"))
    return items


#: Consumer settings whose effect shows under Topics already (retry, DLQ topics).
_SHOWN_AS_TOPICS = frozenset({"dlq_config"})


def _service_items(head: Topology, base: Topology | None) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    for kind, new, old in (("consumer group", head.consumers, base.consumers if base else {}),
                           ("producer", head.producers, base.producers if base else {})):
        for name, spec in new.items():
            if name not in old:
                items.append(ReviewItem(Resource.SERVICE, name, Grade.SAFE, f"new {kind}",
                                        mark="+"))
                continue
            items += _setting_items(name, _fields(old[name]), _fields(spec))
        for name in old:
            if name not in new:
                items.append(ReviewItem(
                    Resource.SERVICE, name, Grade.CAUTION, f"{kind} removed",
                    "it stops; topics only it used are planned for deletion (see Topics)",
                    mark="-"))
    return items


def _setting_items(name: str, old: Mapping[str, Any], new: Mapping[str, Any]
                   ) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    for key in dict.fromkeys([*old, *new]):
        if key in _SHOWN_AS_TOPICS or old.get(key) == new.get(key):
            continue
        before, after = old.get(key), new.get(key)
        grade, reason = _grade_setting(key, before, after)
        items.append(ReviewItem(Resource.SERVICE, name, grade,
                                f"{key}: {_show(before)} → {_show(after)}", reason))
    return items


def _grade_setting(key: str, before: Any, after: Any) -> tuple[Grade, str]:
    if key in ("subscribes", "publishes", "retry") and isinstance(before, list) \
            and isinstance(after, list):
        dropped = [item for item in before if item not in after]
        if not dropped and after[: len(before)] == before:
            what = {"subscribes": "the group starts handling them",
                    "publishes": "the service may publish them",
                    "retry": "a failing event gets more tiers before the DLQ"}[key]
            return Grade.SAFE, f"adds {', '.join(_show(i) for i in after[len(before):])}: {what}"
        what = {"subscribes": "the group stops handling " + ", ".join(map(_show, dropped)),
                "publishes": "the service may no longer publish " + ", ".join(map(_show, dropped)),
                "retry": "failing events are retried on another schedule"}[key]
        return Grade.CAUTION, what
    if key == "dlq":
        return ((Grade.CAUTION, "events that fail every tier are dropped, not dead-lettered")
                if not after else (Grade.SAFE, "events that fail every tier are kept"))
    if key == "handler":
        return Grade.CAUTION, "another function handles the events"
    if key in ("concurrency", "batch"):
        return Grade.SAFE, "how the service runs; no data is touched"
    return Grade.CAUTION, "changes how the service runs"


def _cluster_items(head: Topology, base: Topology | None) -> list[ReviewItem]:
    if base is None:
        return []
    items: list[ReviewItem] = []
    old, new = _fields(base.cluster), _fields(head.cluster)
    for key in dict.fromkeys([*old, *new]):
        if old.get(key) == new.get(key):
            continue
        reason = ("plan and apply target another cluster" if key == "bootstrap_servers"
                  else "clients connect differently")
        items.append(ReviewItem(Resource.CLUSTER, f"cluster.{key}", Grade.CAUTION,
                                f"{_show(old.get(key))} → {_show(new.get(key))}", reason))
    return items


def _fields(model: BaseModel) -> dict[str, Any]:
    return {key: getattr(model, name) for name, key in
            ((name, info.alias or name) for name, info in type(model).model_fields.items())}


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, Duration):
        return value.label
    if isinstance(value, BaseModel):
        return _show(_fields(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Iterable) and not isinstance(value, str):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)

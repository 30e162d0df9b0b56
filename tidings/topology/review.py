"""A plan or a diff as a reviewer reads it: rows grouped by resource, then by topic.

Every cluster change (:mod:`plan`) and every change to the declaration itself
(:mod:`diff`) becomes a :class:`ReviewItem`. One renderer turns them into the text
a terminal shows and the markdown a pull request comment carries, and one rule
turns them into an exit code CI can branch on (``--detailed-exitcode``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tidings.durations import Duration
from tidings.topology import kafka_configs
from tidings.topology.plan import RESOURCE_OF, Change, ChangeKind, Grade, Plan, Resource
from tidings.topology.topology import Topology

#: ``--detailed-exitcode``, as Terraform's: 0 nothing to do, 2 changes, 1 an error;
#: 3 when a change is destructive, so CI can ask for a label or an approval.
EXIT_NO_CHANGES = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_DESTRUCTIVE = 3

_HEADINGS: dict[Resource, tuple[str, str]] = {  # resource: (heading, subject column)
    Resource.TOPIC: ("Topics", "topic"),
    Resource.ACL: ("ACLs", "principal"),
    Resource.SCHEMA: ("Schemas", "event"),
    Resource.EVENT: ("Events", "event"),
    Resource.SERVICE: ("Services", "service"),
    Resource.CLUSTER: ("Cluster", "setting"),
}
_BADGE = {Grade.SAFE: "🟢 safe", Grade.CAUTION: "🟡 caution",
          Grade.DESTRUCTIVE: "🔴 **destructive**"}
_MARK = {ChangeKind.CREATE: "+", ChangeKind.DELETE: "-", ChangeKind.ADD_ACL: "+",
         ChangeKind.REMOVE_ACL: "-"}


@dataclass(frozen=True)
class ReviewItem:
    """One change, graded, with the reason a reviewer needs."""

    resource: Resource
    #: What the row is about: a topic, an event, a service.
    subject: str
    grade: Grade
    #: The change in a few words ("partitions 12 → 24").
    change: str
    reason: str = ""
    #: The heading rows are grouped under: a declared topic gathers its retry/DLQ copies.
    group: str = ""
    mark: str = "~"

    @property
    def heading(self) -> str:
        return self.group or self.subject


@dataclass(frozen=True)
class Located:
    """A message with the place in the file it is about (refusals, lint warnings)."""

    message: str
    where: str = ""

    def render(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class Review:
    """Everything a plan or a diff says, ready to render."""

    title: str
    #: "`shop`, environment `prod`": what is compared.
    subject: str
    #: "against `kafka:9092` (3 brokers)" or "against `origin/main`".
    against: str
    items: list[ReviewItem] = field(default_factory=list)
    refusals: list[Located] = field(default_factory=list)
    warnings: list[Located] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Topics that need nothing (a plan against a cluster), when known.
    in_sync: int | None = None
    #: ACLs that need nothing, where the cluster enforces ACLs.
    acls_in_sync: int | None = None

    @property
    def empty(self) -> bool:
        return not self.items and not self.refusals

    def counts(self) -> dict[str, int]:
        return {grade.value: sum(1 for i in self.items if i.grade is grade) for grade in Grade}

    def exit_code(self, detailed: bool) -> int:
        """0 / 2 / 3 with ``detailed``; 1 when something is refused (apply would stop)."""
        if self.refusals:
            return EXIT_ERROR
        if not detailed or not self.items:
            return EXIT_NO_CHANGES
        if any(i.grade is Grade.DESTRUCTIVE for i in self.items):
            return EXIT_DESTRUCTIVE
        return EXIT_CHANGES

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{n} {grade}" for grade, n in counts.items() if n]
        total = len(self.items)
        text = f"{total} change{'s' if total != 1 else ''}"
        if parts:
            text += ": " + ", ".join(parts)
        if self.refusals:
            text += f"; {len(self.refusals)} refused"
        if self.in_sync:
            text += f"; {self.in_sync} topic{'s' if self.in_sync != 1 else ''} already in sync"
        if self.acls_in_sync:
            text += f", {self.acls_in_sync} ACL{'s' if self.acls_in_sync != 1 else ''}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [{k: v for k, v in asdict(i).items() if v not in ("", None)}
                        for i in self.items],
            "refused": [asdict(r) for r in self.refusals],
            "warnings": [asdict(w) for w in self.warnings],
            "summary": {**self.counts(), "refused": len(self.refusals)},
        }

    def markdown(self) -> str:
        """A pull request comment: grouped tables, refusals and lint warnings."""
        out = [f"### {self.title}: {self.subject}", ""]
        if self.empty:
            out.append(f"No changes {self.against}." + (
                f" {self.in_sync} topics in sync." if self.in_sync is not None else "")
                + (f" {self.acls_in_sync} ACLs in sync." if self.acls_in_sync is not None
                   else ""))
        else:
            out.append(f"{self.against.capitalize()}: **{self.summary()}**.")
            if any(i.grade is Grade.DESTRUCTIVE for i in self.items):
                out += ["", "> [!WARNING]",
                        "> Destructive changes delete data or break ordering; applying them "
                        "needs `--allow-destructive` and a reviewer's approval."]
        for note in self.notes:
            out += ["", f"> {note}"]
        for resource in Resource:
            rows = [i for i in self.items if i.resource is resource]
            if rows:
                out += ["", *_markdown_table(resource, rows)]
        if self.refusals:
            out += ["", "#### Refused", ""]
            out += [f"- {_md_where(r)}{_cell(r.message)}" for r in self.refusals]
        if self.warnings:
            out += ["", f"#### Production lint ({len(self.warnings)} "
                        f"warning{'s' if len(self.warnings) != 1 else ''})", ""]
            out += [f"- {_md_where(w)}{_cell(w.message)}" for w in self.warnings]
        return "\n".join(out) + "\n"

    def text(self) -> str:
        """The same, for a terminal."""
        lines = [f"{self.title} of {self.subject} {self.against}:".replace("`", "")]
        if self.empty:
            lines.append("  No changes.")
        for note in self.notes:
            lines.append(f"  note: {note}".replace("`", ""))
        for resource in Resource:
            rows = [i for i in self.items if i.resource is resource]
            if rows:
                lines.append(f"  {_HEADINGS[resource][0]}")
                lines += text_rows(rows, indent="    ")
        lines += [f"  ! {r.render()}" for r in self.refusals]
        if not self.empty:
            lines.append(self.summary() + ".")
        return "\n".join(lines)


def text_rows(rows: Iterable[ReviewItem], indent: str = "  ") -> list[str]:
    """One line per change, the reason once per distinct risk."""
    lines: list[str] = []
    explained: set[str] = set()
    for item in _ordered(rows):
        lines.append(f"{indent}{item.mark} {item.subject}: {item.change}  [{item.grade.value}]")
        if item.reason and item.grade is not Grade.SAFE and item.reason not in explained:
            explained.add(item.reason)
            lines.append(f"{indent}    {item.reason}")
    return lines


def items_from_plan(plan: Plan, topology: Topology) -> list[ReviewItem]:
    """The plan's cluster changes as review rows, each topic under its declared topic."""
    parents = {t.name: t.parent or t.name for t in topology.desired_topics()}
    declared = sorted(topology.topics, key=len, reverse=True)
    return [item_from_change(change, change.acl.principal if change.acl
                             else _group_of(change.topic, parents, declared))
            for change in plan.changes]


def item_from_change(change: Change, group: str) -> ReviewItem:
    resource = RESOURCE_OF.get(change.kind, Resource.TOPIC)
    # An ACL row is about its principal, and its rows gather under it.
    subject = change.acl.principal if change.acl else change.topic
    return ReviewItem(resource, subject, change.grade, _describe(change),
                      change.reason, group, _MARK.get(change.kind, "~"))


def _group_of(topic: str, parents: dict[str, str], declared: list[str]) -> str:
    if topic in parents:
        return parents[topic]
    # A topic being deleted is no longer in the file: a derived name starts with its
    # source topic's name and a dot.
    for name in declared:
        if topic.startswith(name + "."):
            return name
    return topic


def _describe(change: Change) -> str:
    if change.kind is ChangeKind.CREATE:
        configs = ", ".join(f"{k}={show_config(k, v)}" for k, v in sorted(change.config.items()))
        return (f"create: {change.partitions} partitions, replication "
                f"{change.replication_factor}" + (f"; {configs}" if configs else ""))
    if change.kind is ChangeKind.ADD_PARTITIONS:
        return f"partitions {change.old} → {change.new}"
    if change.kind is ChangeKind.SET_CONFIG and change.key:
        old = show_config(change.key, change.old) if change.old is not None else "(unset)"
        return f"{change.key}: {old} → {show_config(change.key, change.new)}"
    if change.kind is ChangeKind.UNSET_CONFIG and change.key:
        return (f"unset {change.key} (was {show_config(change.key, change.old)}; the broker "
                "default applies)")
    if change.kind is ChangeKind.DELETE:
        return "delete topic"
    if change.acl is not None:
        acl = change.acl
        verb = "allow" if change.kind is ChangeKind.ADD_ACL else "revoke"
        prefixed = " (prefix)" if acl.pattern_type.value == "PREFIXED" else ""
        return (f"{verb} {acl.operation.value} on {acl.resource_type.value.lower()} "
                f"{acl.resource_name}{prefixed}")
    return change.summary


def show_config(key: str, value: str | None) -> str:
    """A config value as a person reads it: ``1209600000 (14d)`` for milliseconds."""
    if value is None:
        return "(unset)"
    if key.endswith(".ms") and value.lstrip("-").isdigit():
        number = kafka_configs.as_number(key, value)
        if number == float("inf"):
            return f"{value} (forever)"
        if int(value) > 0:
            return f"{value} ({Duration(int(value)).label})"
    return value


def _ordered(rows: Iterable[ReviewItem]) -> list[ReviewItem]:
    # Group by heading; within a group the declared topic comes first, then its copies.
    listed = list(rows)
    first: dict[str, int] = {}
    for index, item in enumerate(listed):
        first.setdefault(item.heading, index)
    return sorted(listed, key=lambda i: (first[i.heading], i.subject != i.heading))


def _markdown_table(resource: Resource, rows: list[ReviewItem]) -> list[str]:
    heading, column = _HEADINGS[resource]
    out = [f"#### {heading}", "", f"| {column} | change | grade | why |",
           "| --- | --- | --- | --- |"]
    # Retry/DLQ/replay copies usually change the same way as their topic: one row for all.
    merged: dict[tuple[str, str, Grade, str], list[ReviewItem]] = {}
    for item in _ordered(rows):
        merged.setdefault((item.heading, item.change, item.grade, item.reason), []).append(item)
    for items in merged.values():
        item = items[0]
        names = "<br>".join(
            (f"`{i.subject}`" if i.subject == i.heading else f"↳ `{i.subject}`")
            for i in items)
        out.append(f"| {names} | {_cell(item.change)} | {_BADGE[item.grade]} | "
                   f"{_cell(item.reason)} |")
    return out


def _md_where(located: Located) -> str:
    return f"`{located.where}` " if located.where else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")

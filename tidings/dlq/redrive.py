"""Redrive: send a group's selected dead letters back to it through its replay topic.

Safe by default: a plan first (nothing changes without ``execute``); each event at most
once per redrive, also when interrupted and resumed (the copy machinery of
:mod:`tidings.replay.copier`, keyed by a ``redrive-id``); events already redriven by an
earlier, finished redrive are not sent again (a ledger of finished runs in the replay
state topic); and an event redriven ``max_redrives`` times is held back unless forced,
so an operator cannot loop one forever by accident. An event that fails again goes
through the tiers and back to the DLQ, its ``redrive-history`` intact.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TextIO

from confluent_kafka import Message

from tidings.dlq.history import redrive_headers
from tidings.dlq.letters import dlq_topics, read_letters
from tidings.dlq.select import LetterFilter, LetterLike
from tidings.replay.cluster import Cluster, ReplayError
from tidings.replay.copier import REDRIVE_ID, CopyTask, copy_records, raw_headers, resume_points
from tidings.replay.progress import Progress, ProgressListener
from tidings.replay.state import StateStore
from tidings.topology import Topology
from tidings.topology.topology import replay_topic_name

DEFAULT_MAX_REDRIVES = 3
_LEDGER_RUNS = 100

Coordinate = tuple[str, int, int]  # DLQ topic, partition, offset


@dataclass(frozen=True)
class RedriveFilter:
    """Which dead letters a redrive selects, and how often one may be redriven."""

    select: LetterFilter = field(default_factory=LetterFilter)
    force: bool = False
    max_redrives: int = DEFAULT_MAX_REDRIVES

    @property
    def error_class(self) -> str | None:
        return self.select.error_class

    def verdict(self, letter: _Redrivable) -> str:
        """``redrive``, ``other`` (not selected) or ``held`` (redriven too often)."""
        if not self.select.matches(letter):
            return "other"
        if not self.force and letter.redrives >= self.max_redrives:
            return "held"
        return "redrive"

    def to_json(self) -> dict[str, Any]:
        return {"select": self.select.to_json(), "force": self.force,
                "max_redrives": self.max_redrives}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RedriveFilter:
        """A filter as the ledger keeps it (also the older ``error_class``-only form)."""
        if "select" in data:
            select = LetterFilter.from_json(data["select"])
        else:
            select = LetterFilter(error_class=data.get("error_class"))
        return cls(select, bool(data.get("force", False)),
                   int(data.get("max_redrives", DEFAULT_MAX_REDRIVES)))


class _Redrivable(LetterLike, Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def redrives(self) -> int: ...


@dataclass(frozen=True)
class RedrivePlan:
    """A redrive, resolved: which dead letters go back, and what is left out and why."""

    group: str
    redrive_id: str
    filter: RedriveFilter
    tasks: list[CopyTask]
    chosen: frozenset[Coordinate]
    done: frozenset[Coordinate] = frozenset()  # copied by an interrupted run of this redrive
    by_class: dict[str, int] = field(default_factory=dict)
    held: int = 0
    other: int = 0
    earlier: int = 0  # redriven by a finished redrive before
    superseded: int = 0  # an older dead letter of an event with a newer one in range
    resumed: bool = False
    signature: str = ""

    @property
    def copies(self) -> int:
        """Letters left out because a newer letter of the same event is sent instead."""
        return self.superseded

    @property
    def selected(self) -> int:
        return len(self.chosen)

    @property
    def remaining(self) -> int:
        return len(self.chosen - self.done)

    @property
    def empty(self) -> bool:
        return self.remaining == 0

    def render(self) -> str:
        """The plan as the CLI prints it."""
        selection = self.filter.select.describe()
        targets = sorted({t.target for t in self.tasks})
        lines = [f"Redrive {self.redrive_id}: dead letters of group {self.group} ({selection})",
                 f"  to:      {', '.join(targets) or '-'}, read by {self.group} alone",
                 "  headers: attempt reset to 1, not-before dropped, the failure appended "
                 "to redrive-history",
                 "  affects: " + self.group + " only"]
        if self.resumed:
            lines.append(f"  resume:  an interrupted run of this redrive sent {len(self.done)} "
                         "event(s); they are not sent again")
        width = max([len(f"{t.source}[{t.partition}]") for t in self.tasks] + [13])
        lines.append(f"  {'dlq partition':<{width}}  {'offsets':<14}  redrive")
        for task in self.tasks:
            if task.end <= task.start:
                continue  # an empty DLQ partition: nothing to say
            count = sum(1 for c in self.chosen if c[:2] == (task.source, task.partition))
            where = f"{task.source}[{task.partition}]"
            lines.append(f"  {where:<{width}}  {f'[{task.start}, {task.end})':<14}  {count:>7}")
        if self.by_class:
            shown = ", ".join(f"{c} {n}" for c, n in sorted(self.by_class.items()))
            lines.append(f"  by error class: {shown}")
        if self.copies:
            lines.append(f"  events:  {self.selected} distinct; {self.copies} more letter(s) "
                         "of the same events are older copies, sent once")
        if self.held:
            lines.append(f"  held back: {self.held} event(s) already redriven "
                         f"{self.filter.max_redrives} times (pass --force to send them anyway)")
        left = [(self.other, "not selected"), (self.earlier, "sent by an earlier redrive")]
        for count, why in left:
            if count:
                lines.append(f"  left out: {count} {why}")
        lines.append(f"  total: {self.selected} selected, {self.remaining} to send")
        if self.empty:
            lines.append("  Nothing to redrive.")
        return "\n".join(lines)


@dataclass(frozen=True)
class RedriveResult:
    """What :func:`execute_redrive` did."""

    redrive_id: str
    sent: int
    elapsed: float


def _key(group: str) -> str:
    return f"redrive/{group}"


def plan_redrive(topology: Topology, group: str, *, error_class: str | None = None,
                 select: LetterFilter | None = None, force: bool = False,
                 max_redrives: int = DEFAULT_MAX_REDRIVES,
                 cluster: Cluster | None = None) -> RedrivePlan:
    """Select the dead letters a redrive would send (``select``, narrowed to
    ``error_class`` if given); changes nothing. Of several letters of one event only
    the newest is sent."""
    pairs = dlq_topics(topology, group)
    if max_redrives < 1:
        raise ReplayError("--max-redrives must be 1 or more")
    cluster = cluster or Cluster(topology)
    select = select or LetterFilter()
    if error_class is not None:
        select = replace(select, error_class=error_class)
    chosen_filter = RedriveFilter(select, force, max_redrives)
    signature = json.dumps({"group": group, "select": select.signature(), "force": force,
                            "max_redrives": max_redrives}, sort_keys=True)
    ledger = StateStore(cluster).get(_key(group)) or {}
    current = ledger.get("current")
    resumed = bool(current and current.get("signature") == signature)
    if resumed:
        assert current is not None
        redrive_id = str(current["id"])
        tasks = [CopyTask.from_json(t) for t in current["tasks"]]
    else:
        redrive_id = f"d-{uuid.uuid4().hex[:12]}"
        tasks = []
        for source, dlq in pairs:
            partitions = cluster.partitions(dlq)
            target = replay_topic_name(source, group)
            if len(cluster.partitions(target)) != len(partitions):
                raise ReplayError(f"{target} and {dlq} differ in partitions; run "
                                  "`tidings topology apply` so that they match")
            for p, (low, high) in cluster.watermarks(dlq, partitions).items():
                tasks.append(CopyTask(dlq, p, low, high, target, floor=0))
    plan = _select(cluster, tasks, chosen_filter, ledger.get("done", []))
    plan = replace(plan, group=group, redrive_id=redrive_id, resumed=resumed,
                   signature=signature)
    if resumed:
        points = resume_points(cluster, tasks, REDRIVE_ID, redrive_id)
        done = frozenset(c for c in plan.chosen if c[2] < points[(c[0], c[1])])
        plan = replace(plan, done=done)
    return plan


def _select(cluster: Cluster, tasks: list[CopyTask], chosen_filter: RedriveFilter,
            finished: list[dict[str, Any]]) -> RedrivePlan:
    latest: dict[tuple[str, str], Coordinate] = {}
    classes: dict[Coordinate, str] = {}
    counts: Counter[str] = Counter()
    for task in tasks:
        for letter in read_letters(cluster, task.source,
                                   {task.partition: (task.start, task.end)}):
            verdict = chosen_filter.verdict(letter)
            if verdict == "redrive" and sent_before(letter, finished):
                verdict = "earlier"
            if verdict != "redrive":
                counts[verdict] += 1
                continue
            where = (letter.topic, letter.partition, letter.offset)
            previous = latest.get((letter.topic, letter.event_id))
            if previous is not None:
                counts["superseded"] += 1
                classes.pop(previous, None)
            latest[(letter.topic, letter.event_id)] = where
            classes[where] = letter.error_class
    return RedrivePlan(group="", redrive_id="", filter=chosen_filter, tasks=tasks,
                       chosen=frozenset(classes), by_class=dict(Counter(classes.values())),
                       held=counts["held"], other=counts["other"], earlier=counts["earlier"],
                       superseded=counts["superseded"])


def finished_redrives(cluster: Cluster, group: str) -> list[dict[str, Any]]:
    """The ledger of the group's finished redrives (the latest ones kept)."""
    ledger = StateStore(cluster).get(_key(group)) or {}
    return list(ledger.get("done", []))


def sent_before(letter: _Redrivable, finished: list[dict[str, Any]]) -> bool:
    """Whether a finished redrive already sent this dead letter back."""
    for run in finished:
        for task in run.get("tasks", []):
            if (task["source"] == letter.topic and task["partition"] == letter.partition
                    and task["start"] <= letter.offset < task["end"]
                    and RedriveFilter.from_json(run["filter"]).verdict(letter) == "redrive"):
                return True
    return False


def execute_redrive(plan: RedrivePlan, topology: Topology, *, cluster: Cluster | None = None,
                    rate: float | None = None, progress: TextIO | None = None,
                    show_progress: bool = True,
                    on_progress: ProgressListener | None = None) -> RedriveResult:
    """Send the plan's dead letters to the group's replay topic(s).

    Progress goes to ``progress`` (a text stream, stderr by default) unless
    ``show_progress`` is false, and to ``on_progress`` as :class:`ProgressUpdate`s."""
    cluster = cluster or Cluster(topology)
    began = time.monotonic()
    if plan.empty:
        return RedriveResult(plan.redrive_id, 0, 0.0)
    store = StateStore(cluster)
    ledger = store.get(_key(plan.group)) or {}
    tasks = plan.tasks
    if not plan.resumed:
        tasks = []
        for task in plan.tasks:
            _, high = cluster.watermarks(task.target, [task.partition])[task.partition]
            tasks.append(replace(task, floor=high))
        ledger = {**ledger, "current": {
            "id": plan.redrive_id, "signature": plan.signature, "filter": plan.filter.to_json(),
            "tasks": [t.to_json() for t in tasks], "started_at": int(time.time() * 1000)}}
        store.put(_key(plan.group), ledger)
    starts = resume_points(cluster, tasks, REDRIVE_ID, plan.redrive_id)
    chosen = plan.chosen

    def transform(message: Message) -> list[tuple[str, bytes]] | None:
        where = (str(message.topic()), message.partition() or 0, message.offset() or 0)
        return redrive_headers(raw_headers(message)) if where in chosen else None

    stats = copy_records(cluster, tasks, run_header=REDRIVE_ID, run_id=plan.redrive_id,
                         transform=transform, starts=starts, rate=rate,
                         progress=Progress(plan.remaining, stream=progress,
                                           enabled=show_progress, listener=on_progress))
    current = ledger.get("current") or {}
    done = [*ledger.get("done", []), {k: current[k] for k in ("id", "filter", "tasks")}]
    store.put(_key(plan.group), {"current": None, "done": done[-_LEDGER_RUNS:]})
    return RedriveResult(plan.redrive_id, stats.copied, time.monotonic() - began)


"""Replay a range of a topic to one consumer group: plan, execute, undo."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TextIO

from confluent_kafka import Message

from tidings.consumer.processing import REPROCESS_HEADER
from tidings.replay.cluster import Cluster, ReplayError
from tidings.replay.copier import (
    REPLAY_ID,
    CopyTask,
    copy_records,
    raw_headers,
    resume_points,
)
from tidings.replay.plan import (
    Mode,
    PartitionSpan,
    ReplayPlan,
    choose_mode,
    resolve_bound,
    spans_for,
)
from tidings.replay.progress import Progress, ProgressListener
from tidings.replay.ranges import check_order, parse_bound
from tidings.replay.state import StateStore, run_key, undo_key
from tidings.topology import Topology
from tidings.topology.topology import replay_topic_name


@dataclass(frozen=True)
class ReplayRequest:
    """What an operator asks for: ``[start, end)`` of ``topic`` re-delivered to ``group``.

    ``start`` and ``end`` are texts as ``--from`` / ``--to`` take them (see
    :mod:`tidings.replay.ranges`); ``mode`` is ``auto``, ``copy`` or ``rewind``.
    """

    group: str
    topic: str
    start: str
    end: str | None = None
    mode: str = "auto"
    reprocess: bool = False
    #: Only these partitions (a share of a large backfill, run by one copier of several);
    #: None: all of them.
    partitions: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ReplayResult:
    """What :func:`execute_replay` did."""

    replay_id: str
    mode: Mode
    events: int  # copied (copy) or to be re-delivered (rewind)
    elapsed: float
    partitions_moved: int = 0


def check_group_and_topic(topology: Topology, group: str, topic: str | None) -> None:
    """One-line errors naming what is declared, for an unknown group or topic."""
    if group not in topology.consumers:
        raise ReplayError(f"unknown consumer group {group!r} in {topology.path.name} "
                          f"(declared: {', '.join(sorted(topology.consumers)) or 'none'})")
    if topic is None:
        return
    consumed = topology.topics_of_consumer(group)
    if topic not in topology.topics:
        raise ReplayError(f"unknown topic {topic!r} in {topology.path.name} "
                          f"(declared: {', '.join(sorted(topology.topics)) or 'none'})")
    if topic not in consumed:
        raise ReplayError(f"group {group} does not consume {topic} "
                          f"(it consumes: {', '.join(consumed) or 'nothing'})")


def plan_replay(topology: Topology, request: ReplayRequest, *,
                cluster: Cluster | None = None, now: datetime | None = None) -> ReplayPlan:
    """Resolve the range against the cluster and decide copy or rewind; changes nothing."""
    group, topic = request.group, request.topic
    check_group_and_topic(topology, group, topic)
    if request.mode not in ("auto", "copy", "rewind"):
        raise ReplayError(f"--mode {request.mode!r}: choose auto, copy or rewind")
    now = now or datetime.now(UTC)
    start = parse_bound(request.start, "--from", now=now)
    end = parse_bound(request.end, "--to", now=now) if request.end is not None else None
    check_order(start, end)
    cluster = cluster or Cluster(topology)
    partitions = all_partitions = cluster.partitions(topic)
    if request.partitions is not None:
        unknown = sorted(set(request.partitions) - set(partitions))
        if unknown:
            raise ReplayError(f"--partitions: {topic} has no partition {unknown[0]} "
                              f"(it has 0-{max(partitions)})")
        if request.mode == "rewind":
            raise ReplayError("--partitions shares a copy between copiers; it does not go "
                              "with --mode rewind")
        partitions = sorted(set(request.partitions))
    status = cluster.group_status(group)
    requested = "copy" if request.partitions is not None else request.mode
    mode, reason = choose_mode(requested, running=status.members if status.active else 0,
                               bounded=end is not None, reprocess=request.reprocess,
                               group=group)
    if request.partitions is not None:
        reason = f"partitions {share_text(partitions)} of {topic}, one share of the copy"
    others = [g for g in topology.consumers if g != group and topic in
              topology.topics_of_consumer(g)]
    share = share_text(partitions) if request.partitions is not None else None
    signature = json.dumps({"group": group, "topic": topic, "from": request.start,
                            "to": request.end, "reprocess": request.reprocess,
                            "mode": mode.value, "partitions": share}, sort_keys=True)
    range_text = f"[{start.describe()}, {end.describe() if end else 'the end'})"
    base = ReplayPlan(group=group, topic=topic, mode=mode, reason=reason, spans=[],
                      range_text=range_text, reprocess=request.reprocess,
                      replay_id=f"r-{uuid.uuid4().hex[:12]}", other_groups=others,
                      signature=signature, share=share)
    if mode is Mode.COPY:
        base = replace(base, target=_check_target(cluster, topic, group, all_partitions))
        resumed = _resume(cluster, base)
        if resumed is not None:
            return resumed
    watermarks = cluster.watermarks(topic, partitions)

    def by_time(timestamp_ms: int) -> Mapping[int, int]:
        return cluster.offsets_for_time(topic, partitions, timestamp_ms)

    starts = resolve_bound(start, partitions, watermarks, by_time, is_end=False)
    ends = resolve_bound(end, partitions, watermarks, by_time, is_end=True) if end else None
    spans = spans_for(starts, ends, watermarks)
    if mode is Mode.REWIND:
        committed = cluster.committed(group, topic, partitions)
        spans = [replace(s, committed=committed[s.partition]) for s in spans]
    return replace(base, spans=spans)


def parse_partitions(text: str) -> tuple[int, ...]:
    """``0,1,2`` or ``0-5,8`` as partition numbers; :class:`ReplayError` otherwise."""
    chosen: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if first > last or first < 0:
                raise ValueError
            chosen.update(range(first, last + 1))
    except ValueError:
        raise ReplayError(f"--partitions {text!r}: write partition numbers and ranges, "
                          "e.g. 0-5 or 0,2,4") from None
    return tuple(sorted(chosen))


def share_text(partitions: list[int]) -> str:
    """Partitions as ranges: ``0-5,8``."""
    runs: list[str] = []
    for number in sorted(partitions):
        if runs and "-" in runs[-1] and int(runs[-1].split("-")[1]) == number - 1:
            runs[-1] = f"{runs[-1].split('-')[0]}-{number}"
        elif runs and "-" not in runs[-1] and int(runs[-1]) == number - 1:
            runs[-1] = f"{runs[-1]}-{number}"
        else:
            runs.append(str(number))
    return ",".join(runs)


def _check_target(cluster: Cluster, topic: str, group: str, partitions: list[int]) -> str:
    target = replay_topic_name(topic, group)
    have = cluster.partitions(target)
    if len(have) != len(partitions):
        raise ReplayError(f"{target} has {len(have)} partitions and {topic} {len(partitions)}; "
                          "run `tidings topology apply` so that they match")
    return target


def _resume(cluster: Cluster, base: ReplayPlan) -> ReplayPlan | None:
    """The plan of an interrupted run of the same replay, with what it already copied."""
    state = StateStore(cluster).get(run_key("replay", base.group, base.topic, base.share))
    if not state or state.get("status") != "running" or state.get("signature") != base.signature:
        return None
    tasks = [CopyTask.from_json(t) for t in state["tasks"]]
    points = resume_points(cluster, tasks, REPLAY_ID, state["id"])
    spans = [PartitionSpan(t.partition, t.start, t.end,
                           done=points[(t.source, t.partition)] - t.start) for t in tasks]
    return replace(base, replay_id=str(state["id"]), spans=spans, resumed=True,
                   range_text=str(state.get("range", base.range_text)))


def execute_replay(plan: ReplayPlan, topology: Topology, *, cluster: Cluster | None = None,
                   rate: float | None = None, progress: TextIO | None = None,
                   show_progress: bool = True,
                   on_progress: ProgressListener | None = None) -> ReplayResult:
    """Carry out ``plan``: copy the range into the replay topic, or rewind the group.

    A copy reports progress to ``progress`` (a text stream, stderr by default) unless
    ``show_progress`` is false, and to ``on_progress`` as :class:`ProgressUpdate`s (the
    console's progress bar); a rewind is one step and reports nothing."""
    cluster = cluster or Cluster(topology)
    if plan.mode is Mode.REWIND:
        return _rewind(plan, cluster)
    began = time.monotonic()
    if plan.empty:
        return ReplayResult(plan.replay_id, plan.mode, 0, 0.0)
    assert plan.target is not None
    store = StateStore(cluster)
    key = run_key("replay", plan.group, plan.topic, plan.share)
    if plan.resumed:
        state = store.get(key) or {}
        tasks = [CopyTask.from_json(t) for t in state.get("tasks", [])]
    else:
        ends = cluster.watermarks(plan.target, [s.partition for s in plan.spans])
        tasks = [CopyTask(plan.topic, s.partition, s.start, s.end, plan.target,
                          floor=ends[s.partition][1]) for s in plan.spans if s.events]
        state = {"id": plan.replay_id, "kind": "replay", "signature": plan.signature,
                 "range": plan.range_text, "status": "running",
                 "tasks": [t.to_json() for t in tasks], "started_at": _now_ms()}
        store.put(key, state)
    starts = resume_points(cluster, tasks, REPLAY_ID, plan.replay_id)
    remaining = sum(t.end - starts[(t.source, t.partition)] for t in tasks)
    # A reprocess copy names its replay: its claims are scoped to it, so each event is
    # applied exactly once more for this replay (however often a copy is delivered).
    mark = plan.replay_id.encode() if plan.reprocess else None

    def transform(message: Message) -> list[tuple[str, bytes]]:
        headers = [(n, v) for n, v in raw_headers(message) if n != REPROCESS_HEADER]
        if mark is not None:
            headers.append((REPROCESS_HEADER, mark))
        return headers

    stats = copy_records(
        cluster, tasks, run_header=REPLAY_ID, run_id=plan.replay_id, transform=transform,
        starts=starts, rate=rate,
        progress=Progress(remaining, stream=progress, enabled=show_progress,
                          listener=on_progress))
    store.put(key, {**state, "status": "done", "finished_at": _now_ms()})
    return ReplayResult(plan.replay_id, plan.mode, stats.copied, time.monotonic() - began)


def _rewind(plan: ReplayPlan, cluster: Cluster) -> ReplayResult:
    moves = {s.partition: s.start for s in plan.spans if s.rewinds}
    if not moves:
        return ReplayResult(plan.replay_id, plan.mode, 0, 0.0)
    status = cluster.group_status(plan.group)
    if status.active:
        raise ReplayError(f"group {plan.group} started ({status.members} member(s)) since "
                          "the plan was made; nothing was changed — plan again")
    store = StateStore(cluster)
    key = undo_key(plan.group)
    previous = store.get(key) or {"stack": []}
    entry = {"replay_id": plan.replay_id, "topic": plan.topic, "saved_at": _now_ms(),
             "offsets": {str(s.partition): s.committed for s in plan.spans if s.rewinds}}
    store.put(key, {"stack": [*previous["stack"], entry]})
    try:
        cluster.alter_committed(plan.group, plan.topic, moves)
    except ReplayError:
        store.put(key, previous if previous["stack"] else None)
        raise
    return ReplayResult(plan.replay_id, plan.mode, plan.remaining, 0.0, len(moves))


@dataclass(frozen=True)
class UndoPlan:
    """The offsets ``tidings replay --undo`` puts back (the last rewind's saved ones)."""

    group: str
    topic: str
    replay_id: str
    saved_at: int
    restore: dict[int, int | None]  # None: the group had no offset; it restarts earliest
    current: dict[int, int | None]

    def render(self) -> str:
        """The undo plan as the CLI prints it."""
        saved = datetime.fromtimestamp(self.saved_at / 1000, UTC).isoformat(timespec="seconds")
        lines = [f"Undo rewind {self.replay_id} of group {self.group} on {self.topic} "
                 f"(offsets saved {saved.replace('+00:00', 'Z')}):",
                 "  partition  committed now -> restored"]
        for partition, offset in sorted(self.restore.items()):
            now = self.current.get(partition)
            shown = "earliest (had none)" if offset is None else str(offset)
            lines.append(f"  {partition:<9}  {'none' if now is None else now} -> {shown}")
        return "\n".join(lines)


def plan_undo(topology: Topology, group: str, *, cluster: Cluster | None = None) -> UndoPlan:
    """What undoing ``group``'s last rewind restores; an error when there is none."""
    check_group_and_topic(topology, group, None)
    cluster = cluster or Cluster(topology)
    state = StateStore(cluster).get(undo_key(group))
    if not state or not state.get("stack"):
        raise ReplayError(f"no rewind of group {group} to undo")
    entry = state["stack"][-1]
    restore = {int(p): (None if o is None else int(o)) for p, o in entry["offsets"].items()}
    current = cluster.committed(group, entry["topic"], sorted(restore))
    return UndoPlan(group, str(entry["topic"]), str(entry["replay_id"]), int(entry["saved_at"]),
                    restore, current)


def execute_undo(plan: UndoPlan, topology: Topology, *, cluster: Cluster | None = None) -> int:
    """Put the saved offsets back (the group must be stopped); returns partitions moved."""
    cluster = cluster or Cluster(topology)
    status = cluster.group_status(plan.group)
    if status.active:
        raise ReplayError(f"group {plan.group} has {status.members} active member(s); "
                          "stop it before undoing a rewind")
    watermarks = cluster.watermarks(plan.topic, sorted(plan.restore))
    offsets = {p: (watermarks[p][0] if o is None else o) for p, o in plan.restore.items()}
    cluster.alter_committed(plan.group, plan.topic, offsets)
    store = StateStore(cluster)
    state = store.get(undo_key(plan.group)) or {"stack": []}
    stack = state["stack"][:-1]
    store.put(undo_key(plan.group), {"stack": stack} if stack else None)
    return len(offsets)


def _now_ms() -> int:
    return int(time.time() * 1000)


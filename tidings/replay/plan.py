"""What a replay will do, computed from offsets alone (pure: no Kafka here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tidings.replay.cluster import ReplayError, Watermarks
from tidings.replay.ranges import Bound


class Mode(StrEnum):
    """How a range reaches the group."""

    COPY = "copy"  # copied into <topic>.<group>.replay, which only the group reads
    REWIND = "rewind"  # the group's committed offsets are moved back to the range start


@dataclass(frozen=True)
class PartitionSpan:
    """``[start, end)`` of one partition; ``done`` of it already copied by an earlier run."""

    partition: int
    start: int
    end: int
    committed: int | None = None  # rewind: where the group is now
    done: int = 0

    @property
    def events(self) -> int:
        return max(0, self.end - self.start)

    @property
    def remaining(self) -> int:
        return max(0, self.events - self.done)

    @property
    def rewinds(self) -> bool:
        """Rewind moves this partition only when the group is past the range start."""
        return self.committed is not None and self.committed > self.start


def resolve_bound(
    bound: Bound,
    partitions: Sequence[int],
    watermarks: Watermarks,
    by_time: Callable[[int], Mapping[int, int]],
    *,
    is_end: bool,
) -> dict[int, int]:
    """Offsets per partition for one bound. A moment becomes the first offset at or after
    it (the partition's end when nothing is that recent). Offsets name partitions: a
    ``--from`` covers only those named, a ``--to`` leaves the others open to the end."""
    if bound.timestamp_ms is not None:
        found = by_time(bound.timestamp_ms)
        return {p: found[p] if found.get(p, -1) >= 0 else watermarks[p][1] for p in partitions}
    unknown = sorted(set(bound.offsets) - set(partitions))
    if unknown:
        option = "--to" if is_end else "--from"
        raise ReplayError(f"{option} {bound.text}: no partition {unknown[0]} "
                          f"(the topic has partitions 0-{max(partitions)})")
    if is_end:
        return {p: bound.offsets.get(p, watermarks[p][1]) for p in partitions}
    return dict(bound.offsets)


def spans_for(
    starts: Mapping[int, int],
    ends: Mapping[int, int] | None,
    watermarks: Watermarks,
) -> list[PartitionSpan]:
    """Clamp each partition's ``[start, end)`` to what the log still holds."""
    spans = []
    for partition in sorted(starts):
        low, high = watermarks[partition]
        requested_end = high if ends is None else ends[partition]
        if starts[partition] > requested_end:
            raise ReplayError(f"--from is after --to on partition {partition} "
                              f"({starts[partition]} > {requested_end})")
        start = min(max(starts[partition], low), high)
        end = min(max(requested_end, start), high)
        spans.append(PartitionSpan(partition, start, end))
    return spans


def choose_mode(requested: str, *, running: int, bounded: bool,
                reprocess: bool, group: str) -> tuple[Mode, str]:
    """Pick copy or rewind (``requested`` is auto, copy or rewind), with the reason."""
    if requested == Mode.REWIND:
        if running:
            raise ReplayError(f"--mode rewind refused: group {group} has {running} active "
                              "member(s); stop it first, or let the replay copy "
                              "(the default while it runs)")
        if bounded:
            raise ReplayError("--mode rewind refused: a group's offsets only have a start, "
                              "so rewind cannot stop at --to; drop --to, or use --mode copy "
                              "to replay exactly [from, to)")
        if reprocess:
            raise ReplayError("--mode rewind refused: rewind re-delivers the original events, "
                              "which carry no reprocess mark, so applied events would be "
                              "skipped; use --mode copy with --reprocess")
        return Mode.REWIND, f"{group} has no active members; its committed offsets move back"
    if requested == Mode.COPY:
        return Mode.COPY, "copy requested"
    if running:
        return Mode.COPY, f"{group} is running ({running} member(s)); its live processing " \
                          "continues beside the copies"
    if bounded:
        return Mode.COPY, "--to bounds the range and a rewind cannot stop there; " \
                          "the range is copied instead"
    if reprocess:
        return Mode.COPY, "--reprocess needs marked copies (a rewind re-delivers the " \
                          "originals, unmarked)"
    return Mode.REWIND, f"{group} has no active members; its committed offsets move back"


@dataclass(frozen=True)
class ReplayPlan:
    """A replay, fully resolved; :func:`tidings.replay.execute_replay` carries it out."""

    group: str
    topic: str
    mode: Mode
    reason: str
    spans: list[PartitionSpan]
    range_text: str
    reprocess: bool
    replay_id: str
    target: str | None = None  # the replay topic (copy mode)
    other_groups: list[str] = field(default_factory=list)
    resumed: bool = False
    signature: str = ""
    #: The partitions of this share of a copy (``--partitions``), or None for all.
    share: str | None = None

    @property
    def events(self) -> int:
        """Events the range holds."""
        return sum(span.events for span in self.spans)

    @property
    def remaining(self) -> int:
        """Events still to copy (copy mode) or to re-deliver (rewind)."""
        if self.mode is Mode.REWIND:
            return sum(max(0, (s.committed or 0) - s.start) for s in self.spans if s.rewinds)
        return sum(span.remaining for span in self.spans)

    @property
    def empty(self) -> bool:
        return self.remaining == 0

    @property
    def affected_groups(self) -> list[str]:
        return [self.group]

    def render(self) -> str:
        """The plan as the CLI prints it."""
        lines = [f"Replay {self.replay_id}: {self.topic} -> group {self.group}",
                 f"  range:   {self.range_text}",
                 f"  mode:    {self.mode.value} ({self.reason})"]
        untouched = f"; not {', '.join(self.other_groups)}" if self.other_groups else ""
        if self.mode is Mode.COPY:
            lines.append(f"  target:  {self.target}, read by {self.group} alone")
        lines.append(f"  affects: {self.group} only{untouched}")
        lines.append(f"  handler: {self._idempotency()}")
        if self.resumed:
            copied = sum(s.done for s in self.spans)
            lines.append(f"  resume:  an interrupted run of this replay copied {copied} "
                         "event(s); they are not copied again")
        lines.append(self._table())
        if self.empty:
            lines.append("  Nothing to replay: the range holds no events"
                         + (" the group has not already passed." if self.mode is Mode.REWIND
                            and self.events else "."))
        return "\n".join(lines)

    def _idempotency(self) -> str:
        if self.reprocess:
            return (f"--reprocess: copies carry tidings-reprocess: {self.replay_id}, so the "
                    "handler runs again for events it already applied (backfill), exactly "
                    "once per event for this replay")
        return ("events keep their event-id, so ones the group already applied are skipped "
                "(idempotency); pass --reprocess to run the handler again")

    def _table(self) -> str:
        rewind = self.mode is Mode.REWIND
        head = "  partition  offsets            events" + \
            ("  committed now -> after" if rewind else ("  copied" if self.resumed else ""))
        rows = [head]
        for s in self.spans:
            row = f"  {s.partition:<9}  {f'[{s.start}, {s.end})':<17}  {s.events:>6}"
            if rewind:
                now = "none" if s.committed is None else str(s.committed)
                after = str(s.start) if s.rewinds else f"{now} (not moved)"
                row += f"  {now} -> {after}"
            elif self.resumed:
                row += f"  {s.done:>6}"
            rows.append(row)
        verb = "to re-deliver" if rewind else "to copy"
        rows.append(f"  total{'':<24}{self.events:>6}  ({self.remaining} {verb})")
        return "\n".join(rows)

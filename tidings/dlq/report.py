"""``dlq list`` and ``dlq show``: what the dead-letter topics hold."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tidings.codec import DecodeError
from tidings.dlq.index import LetterIndex, LetterRef
from tidings.dlq.letters import DeadLetter, groups_with_dlq, read_offsets
from tidings.dlq.redrive import finished_redrives, sent_before
from tidings.dlq.select import LetterFilter
from tidings.replay.cluster import Cluster, ReplayError
from tidings.topology import Topology


@dataclass(frozen=True)
class DlqSummary:
    """Dead letters of one group and error class."""

    group: str
    error_class: str
    count: int  # letters: copies, one per time an event was dead-lettered
    oldest_ms: int
    newest_ms: int
    redriven: int = 0  # of ``count``, sent back by a finished redrive already
    events: int = 0  # distinct event ids among them


def dlq_summary(topology: Topology, group: str | None = None, *,
                cluster: Cluster | None = None,
                indexes: Mapping[str, LetterIndex] | None = None) -> list[DlqSummary]:
    """Per group and error class: letters, distinct events, oldest and newest
    dead-lettering time, and how many a finished redrive sent back already.

    ``indexes`` (group -> a :class:`LetterIndex` kept by the caller) avoids reading the
    DLQ again; without it each group's DLQ is read once."""
    groups = [group] if group is not None else groups_with_dlq(topology)
    cluster = cluster or Cluster(topology)
    rows: list[DlqSummary] = []
    for name in groups:
        index = (indexes or {}).get(name)
        if index is None:
            index = LetterIndex(topology, name, cluster=cluster)
            index.refresh()
        finished = finished_redrives(cluster, name)
        by_class: dict[str, list[LetterRef]] = {}
        for ref in index.letters():
            by_class.setdefault(ref.error_class, []).append(ref)
        for error_class, refs in sorted(by_class.items()):
            stamps = [r.timestamp_ms for r in refs]
            rows.append(DlqSummary(name, error_class, len(refs), min(stamps), max(stamps),
                                   sum(sent_before(r, finished) for r in refs),
                                   len({r.event_id for r in refs})))
    return rows


def render_summary(rows: list[DlqSummary], groups: list[str]) -> str:
    """The ``dlq list`` table: letters (copies) beside distinct events; groups without
    dead letters say so."""
    g = max([len(r.group) for r in rows] + [5])
    c = max([len(r.error_class) for r in rows] + [11])
    lines = [f"{'group':<{g}}  {'error class':<{c}}  {'letters':>7}  {'events':>6}  "
             f"{'redriven':>8}  {'oldest':<20}  newest"]
    for row in rows:
        lines.append(f"{row.group:<{g}}  {row.error_class:<{c}}  {row.count:>7}  "
                     f"{row.events:>6}  {row.redriven:>8}  {format_ms(row.oldest_ms):<20}  "
                     f"{format_ms(row.newest_ms)}")
    copies = [r for r in rows if r.count > r.events]
    if copies:
        lines.append("letters > events: an event was dead-lettered more than once (a "
                     "redelivery after a crash, or a redrive that failed again); a redrive "
                     "sends each event once")
    empty = [g for g in groups if g not in {r.group for r in rows}]
    if empty:
        lines.append(f"no dead letters: {', '.join(empty)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ShownLetter:
    """A dead letter with its payload decoded, or why it could not be."""

    letter: DeadLetter
    record: dict[str, Any] | None
    decode_error: str | None


@dataclass(frozen=True)
class LetterPage:
    """One page of a selection of dead letters, oldest first."""

    letters: list[ShownLetter]
    total: int  # letters the selection matches
    events: int  # distinct events among them
    offset: int
    limit: int

    @property
    def more(self) -> int:
        return max(0, self.total - self.offset - len(self.letters))


def show_letters(topology: Topology, group: str, *, limit: int = 20, offset: int = 0,
                 select: LetterFilter | None = None, cluster: Cluster | None = None,
                 index: LetterIndex | None = None) -> LetterPage:
    """Letters ``[offset, offset + limit)`` of the selection, decoded.

    With an ``index`` the caller keeps (the console), a page reads only what was
    dead-lettered since the last page plus the page's own letters."""
    if offset < 0 or limit < 0:
        raise ReplayError("--offset and --limit must be 0 or more")
    cluster = cluster or (index.cluster if index is not None else Cluster(topology))
    if index is None:
        index = LetterIndex(topology, group, cluster=cluster)
    index.refresh()
    refs = index.letters(select)
    page = refs[offset:offset + limit]
    return LetterPage(decode_letters(topology, fetch(cluster, page)), len(refs),
                      len({r.event_id for r in refs}), offset, limit)


def fetch(cluster: Cluster, refs: list[LetterRef]) -> list[DeadLetter]:
    """The full dead letters (payload included) behind index entries, in their order."""
    wanted: dict[str, dict[int, list[int]]] = {}
    for ref in refs:
        wanted.setdefault(ref.topic, {}).setdefault(ref.partition, []).append(ref.offset)
    found: dict[tuple[str, int, int], DeadLetter] = {}
    for topic, offsets in wanted.items():
        for (partition, offset), letter in read_offsets(cluster, topic, offsets).items():
            found[(topic, partition, offset)] = letter
    return [found[r.coordinate] for r in refs if r.coordinate in found]


def decode_letters(topology: Topology, letters: list[DeadLetter]) -> list[ShownLetter]:
    """Each letter's payload decoded as its event, or the reason it does not decode."""
    codec = topology.codec()
    shown: list[ShownLetter] = []
    for letter in letters:
        try:
            record: dict[str, Any] | None = codec.decode(letter.value).record
            error = None
        except DecodeError as exc:
            record, error = None, f"{type(exc).__name__}: {exc}"
        shown.append(ShownLetter(letter, record, error))
    return shown


def render_letter(item: ShownLetter) -> str:
    """One dead letter, several lines."""
    letter = item.letter
    key = letter.key.decode("utf-8", "replace") if letter.key is not None else "-"
    lines = [f"{letter.topic}[{letter.partition}]@{letter.offset}  {letter.event_type}  "
             f"event-id {letter.event_id}  key {key}",
             f"  failed:   attempt {letter.attempts} at {letter.headers.get('failed-at', '?')}, "
             f"first delivered at {letter.original}",
             f"  error:    {letter.error_class}: {letter.error_message}"]
    for index, entry in enumerate(letter.history, 1):
        lines.append(f"  earlier:  #{index} attempt {entry.get('attempt')} at "
                     f"{entry.get('failed-at')}: {entry.get('error-class')}: "
                     f"{entry.get('error-message')}")
    if item.record is not None:
        lines.append(f"  event:    {json.dumps(item.record, default=str, sort_keys=True)}")
    else:
        lines.append(f"  raw:      {letter.value!r}  ({item.decode_error})")
    return "\n".join(lines)


def format_ms(moment_ms: int) -> str:
    """Epoch ms as ``2026-03-14T15:09:26Z``."""
    moment = datetime.fromtimestamp(moment_ms / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")

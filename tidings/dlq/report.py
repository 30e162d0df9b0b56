"""``dlq list`` and ``dlq show``: what the dead-letter topics hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tidings.codec import DecodeError
from tidings.dlq.letters import DeadLetter, dlq_topics, groups_with_dlq, read_letters
from tidings.dlq.redrive import finished_redrives, sent_before
from tidings.replay.cluster import Cluster
from tidings.topology import Topology


@dataclass(frozen=True)
class DlqSummary:
    """Dead letters of one group and error class."""

    group: str
    error_class: str
    count: int
    oldest_ms: int
    newest_ms: int
    redriven: int = 0  # of ``count``, sent back by a finished redrive already


def dlq_summary(topology: Topology, group: str | None = None, *,
                cluster: Cluster | None = None) -> list[DlqSummary]:
    """Counts per group and error class, with the oldest and newest dead-lettering time."""
    groups = [group] if group is not None else groups_with_dlq(topology)
    cluster = cluster or Cluster(topology)
    rows: dict[tuple[str, str], list[int]] = {}
    for name in groups:
        finished = finished_redrives(cluster, name)
        for _, dlq in dlq_topics(topology, name):
            for letter in read_letters(cluster, dlq):
                row = rows.setdefault((name, letter.error_class), [0, letter.timestamp_ms,
                                                                    letter.timestamp_ms, 0])
                row[0] += 1
                row[1] = min(row[1], letter.timestamp_ms)
                row[2] = max(row[2], letter.timestamp_ms)
                row[3] += sent_before(letter, finished)
    return [DlqSummary(g, c, n, lo, hi, r) for (g, c), (n, lo, hi, r) in sorted(rows.items())]


def render_summary(rows: list[DlqSummary], groups: list[str]) -> str:
    """The ``dlq list`` table; groups without dead letters say so."""
    g = max([len(r.group) for r in rows] + [5])
    c = max([len(r.error_class) for r in rows] + [11])
    lines = [f"{'group':<{g}}  {'error class':<{c}}  {'events':>6}  {'redriven':>8}  "
             f"{'oldest':<20}  newest"]
    for row in rows:
        lines.append(f"{row.group:<{g}}  {row.error_class:<{c}}  {row.count:>6}  "
                     f"{row.redriven:>8}  {format_ms(row.oldest_ms):<20}  "
                     f"{format_ms(row.newest_ms)}")
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


def show_letters(topology: Topology, group: str, *, limit: int = 20,
                 cluster: Cluster | None = None) -> tuple[list[ShownLetter], int]:
    """The oldest ``limit`` dead letters of the group, decoded; and how many there are."""
    cluster = cluster or Cluster(topology)
    codec = topology.codec()
    shown: list[ShownLetter] = []
    total = 0
    for _, dlq in dlq_topics(topology, group):
        for letter in read_letters(cluster, dlq):
            total += 1
            if len(shown) >= limit:
                continue
            try:
                record: dict[str, Any] | None = codec.decode(letter.value).record
                error = None
            except DecodeError as exc:
                record, error = None, f"{type(exc).__name__}: {exc}"
            shown.append(ShownLetter(letter, record, error))
    return shown, total


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

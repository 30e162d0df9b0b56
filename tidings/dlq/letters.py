"""Dead letters as records: reading a group's DLQ topics and what their headers say."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from tidings import headers as h
from tidings.dlq.history import history_of
from tidings.replay.cluster import Cluster, ReplayError, read_assigned
from tidings.topology import Topology
from tidings.topology.topology import dlq_topic_name

#: Offsets at most this far apart are fetched as one run (cheaper than another seek).
_RUN_GAP = 64


@dataclass(frozen=True)
class DeadLetter:
    """One record of a DLQ topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(repr=False)

    @classmethod
    def from_message(cls, message: Message) -> DeadLetter:
        return cls(str(message.topic()), message.partition() or 0, message.offset() or 0,
                   message.timestamp()[1], message.key(), message.value() or b"",
                   h.header_dict(message.headers()))

    @property
    def event_id(self) -> str:
        return self.headers.get(h.EVENT_ID, f"{self.topic}:{self.partition}:{self.offset}")

    @property
    def event_type(self) -> str:
        return self.headers.get(h.EVENT_TYPE, "unknown")

    @property
    def error_class(self) -> str:
        return self.headers.get(h.ERROR_CLASS, "unknown")

    @property
    def error_message(self) -> str:
        return self.headers.get(h.ERROR_MESSAGE, "")

    @property
    def attempts(self) -> str:
        return self.headers.get(h.ATTEMPT, "?")

    @property
    def original(self) -> str:
        """``topic[partition]@offset`` of the first failed delivery."""
        return (f"{self.headers.get(h.ORIGINAL_TOPIC, '?')}"
                f"[{self.headers.get(h.ORIGINAL_PARTITION, '?')}]"
                f"@{self.headers.get(h.ORIGINAL_OFFSET, '?')}")

    @property
    def history(self) -> list[dict[str, Any]]:
        return history_of(self.headers)

    @property
    def redrives(self) -> int:
        """How often the event was redriven before it came back here."""
        return len(self.history)

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", "replace")

    @property
    def coordinate(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


def dlq_topics(topology: Topology, group: str) -> list[tuple[str, str]]:
    """``(source topic, DLQ topic)`` pairs of a group; an error when it declares no DLQ."""
    from tidings.replay.api import check_group_and_topic

    check_group_and_topic(topology, group, None)
    if not topology.consumers[group].dlq:
        raise ReplayError(f"group {group} declares no DLQ (add `dlq: true` under "
                          f"consumers.{group} in {topology.path.name})")
    return [(topic, dlq_topic_name(topic, group)) for topic in topology.topics_of_consumer(group)]


def groups_with_dlq(topology: Topology) -> list[str]:
    return [group for group, spec in topology.consumers.items() if spec.dlq]


def read_offsets(cluster: Cluster, topic: str,
                 wanted: dict[int, list[int]]) -> dict[tuple[int, int], DeadLetter]:
    """The dead letters at exactly these offsets, never the whole partition: nearby
    offsets are fetched as one run, and the runs of different partitions together
    (one consumer, one fetch per round)."""
    found: dict[tuple[int, int], DeadLetter] = {}
    runs: dict[int, list[tuple[int, int]]] = {}  # partition -> [start, end) runs
    for partition, offsets in sorted(wanted.items()):
        mine = runs.setdefault(partition, [])
        for offset in sorted(set(offsets)):
            if mine and offset - mine[-1][1] <= _RUN_GAP:
                mine[-1] = (mine[-1][0], offset + 1)
            else:
                mine.append((offset, offset + 1))
    wanted_sets = {p: set(o) for p, o in wanted.items()}
    # A short fetch wait: these reads ask for records known to exist.
    consumer = cluster.consumer(fetch_wait_max_ms=10)
    try:
        while any(runs.values()):
            ranges = {p: mine.pop(0) for p, mine in runs.items() if mine}
            for message in read_assigned(consumer, topic, ranges,
                                         max(cluster.timeout, 10.0)):
                letter = DeadLetter.from_message(message)
                if letter.offset in wanted_sets[letter.partition]:
                    found[(letter.partition, letter.offset)] = letter
    finally:
        consumer.close()
    return found


def read_letters(cluster: Cluster, topic: str,
                 ranges: dict[int, tuple[int, int]] | None = None) -> Iterator[DeadLetter]:
    """Dead letters of ``topic`` in ``ranges`` (default: all it holds now)."""
    if ranges is None:
        partitions = cluster.partitions(topic)
        ranges = cluster.watermarks(topic, partitions)
    if not any(end > start for start, end in ranges.values()):
        return
    consumer = cluster.consumer(fetch_wait_max_ms=10)
    try:
        for message in read_assigned(consumer, topic, ranges, max(cluster.timeout, 10.0)):
            yield DeadLetter.from_message(message)
    finally:
        consumer.close()

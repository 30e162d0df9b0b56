"""An index of a group's dead letters: their headers by offset, kept fresh incrementally.

Kafka cannot filter by header or count distinct event ids on the broker, so listing
or paging a DLQ means reading it. The index reads each DLQ partition once and
remembers, per letter, only what a selection looks at (no payload). A refresh reads
just what was appended since (from the last end offset it saw) and forgets what a
purge deleted (below the new start offset). A page of letters is then a slice of the
index, and only the letters on that page are fetched again, for their payloads
(:func:`tidings.dlq.letters.read_offsets`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tidings.dlq.letters import DeadLetter, dlq_topics, read_letters
from tidings.dlq.select import LetterFilter
from tidings.replay.cluster import Cluster
from tidings.topology import Topology


@dataclass(frozen=True)
class LetterRef:
    """One dead letter as the index keeps it (headers that selections use)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    event_id: str
    event_type: str
    error_class: str
    error_message: str
    key_text: str | None
    redrives: int

    @classmethod
    def of(cls, letter: DeadLetter) -> LetterRef:
        return cls(letter.topic, letter.partition, letter.offset, letter.timestamp_ms,
                   letter.event_id, letter.event_type, letter.error_class,
                   letter.error_message[:200], letter.key_text, letter.redrives)

    @property
    def coordinate(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass
class _Partition:
    low: int = 0
    high: int = 0
    refs: list[LetterRef] = field(default_factory=list)


@dataclass(frozen=True)
class Census:
    """Letters (copies) and distinct events, per error class and in all."""

    letters: int
    events: int
    by_class: dict[str, tuple[int, int]]  # error class -> (letters, events)


class LetterIndex:
    """The dead letters of one consumer group, in dead-lettering order."""

    def __init__(self, topology: Topology, group: str, *,
                 cluster: Cluster | None = None) -> None:
        self.topology = topology
        self.group = group
        self.topics = [dlq for _, dlq in dlq_topics(topology, group)]
        self.cluster = cluster or Cluster(topology)
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._lock = threading.Lock()
        self._sorted: list[LetterRef] | None = None
        #: Records read from the cluster since the index was made (what paging costs).
        self.records_read = 0
        self.refreshed_at = 0.0

    def refresh(self) -> int:
        """Read what was appended since the last refresh; returns records read."""
        with self._lock:
            read = 0
            for topic in self.topics:
                partitions = self.cluster.partitions(topic)
                marks = self.cluster.watermarks(topic, partitions)
                ranges: dict[int, tuple[int, int]] = {}
                for p in partitions:
                    low, high = marks[p]
                    known = self._partitions.setdefault((topic, p), _Partition(low, low))
                    if low > known.low:  # purged below ``low``
                        known.refs = [r for r in known.refs if r.offset >= low]
                        self._sorted = None
                    start = max(known.high, low)
                    if high < known.high:  # the topic was recreated: start over
                        known.refs, start = [], low
                        self._sorted = None
                    if high > start:
                        ranges[p] = (start, high)
                    known.low, known.high = low, high
                # Every partition's news in one read (one consumer per topic).
                for letter in read_letters(self.cluster, topic, ranges):
                    self._partitions[(topic, letter.partition)].refs.append(LetterRef.of(letter))
                    read += 1
                    self._sorted = None
            self.records_read += read
            self.refreshed_at = time.monotonic()
            return read

    def letters(self, select: LetterFilter | None = None) -> list[LetterRef]:
        """The indexed letters a selection matches, oldest first."""
        with self._lock:
            if self._sorted is None:
                every = [r for part in self._partitions.values() for r in part.refs]
                self._sorted = sorted(every, key=lambda r: (r.timestamp_ms, r.topic,
                                                            r.partition, r.offset))
            refs = self._sorted
        if select is None or select.empty:
            return list(refs)
        return [r for r in refs if select.matches(r)]

    def census(self, select: LetterFilter | None = None) -> Census:
        return census(self.letters(select))

    def event_types(self) -> list[str]:
        return sorted({r.event_type for r in self.letters()})

    def error_classes(self) -> list[str]:
        return sorted({r.error_class for r in self.letters()})


def census(refs: Iterable[LetterRef]) -> Census:
    """Count letters and distinct event ids, in all and per error class."""
    letters: Counter[str] = Counter()
    events: dict[str, set[str]] = {}
    every: set[str] = set()
    total = 0
    for ref in refs:
        total += 1
        letters[ref.error_class] += 1
        events.setdefault(ref.error_class, set()).add(ref.event_id)
        every.add(ref.event_id)
    return Census(total, len(every),
                  {c: (n, len(events[c])) for c, n in sorted(letters.items())})

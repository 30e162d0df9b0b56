"""Copying records into a group's replay topic, resumable without copying twice.

Source partition ``p`` goes to replay partition ``p`` (derived topics copy their
source's partition count), in offset order, through the idempotent ``acks=all``
producer. So the replay topic is its own progress log: the last record of partition
``p`` carrying this run's id names, in ``replay-source-offset``, the last source
offset copied, and an interrupted run (even killed outright) resumes right after
it. Records below the run's ``floor`` (the partition's end when the run began) are
never searched: they predate the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Message

from tidings import headers as h
from tidings import tracing
from tidings.producer.reliable import ReliableProducer
from tidings.replay.cluster import Cluster
from tidings.replay.progress import Progress
from tidings.replay.throttle import TokenBucket

REPLAY_ID = "replay-id"
REDRIVE_ID = "redrive-id"
SOURCE_TOPIC = "replay-source-topic"
SOURCE_PARTITION = "replay-source-partition"
SOURCE_OFFSET = "replay-source-offset"
SOURCE_TIMESTAMP = "replay-source-timestamp"
#: Headers a copy gets anew; any older values (a copy of a copy) are dropped first.
COPY_HEADERS = frozenset({REPLAY_ID, REDRIVE_ID, SOURCE_TOPIC, SOURCE_PARTITION,
                          SOURCE_OFFSET, SOURCE_TIMESTAMP})

_SCAN_CHUNK = 1000
_WINDOW = 20_000  # copies unacknowledged at once

#: Rewrites a source record's headers for its copy; None leaves the record out.
Transform = Callable[[Message], list[tuple[str, bytes]] | None]


@dataclass(frozen=True)
class CopyTask:
    """Copy ``[start, end)`` of ``source`` partition ``partition`` to the same partition
    of ``target``, whose records from offset ``floor`` on may belong to this run."""

    source: str
    partition: int
    start: int
    end: int
    target: str
    floor: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CopyTask:
        return cls(str(data["source"]), int(data["partition"]), int(data["start"]),
                   int(data["end"]), str(data["target"]), int(data["floor"]))


@dataclass(frozen=True)
class CopyStats:
    """What one copy run did."""

    copied: int
    skipped: int
    elapsed: float


def resume_points(cluster: Cluster, tasks: Iterable[CopyTask], run_header: str,
                  run_id: str) -> dict[tuple[str, int], int]:
    """Per ``(source, partition)`` the next source offset to copy."""
    points: dict[tuple[str, int], int] = {}
    for task in tasks:
        last = _last_copied(cluster, task, run_header, run_id)
        points[(task.source, task.partition)] = task.start if last is None \
            else max(task.start, last + 1)
    return points


def _last_copied(cluster: Cluster, task: CopyTask, run_header: str, run_id: str) -> int | None:
    # Scan back from the end in chunks: this run's latest copy is usually near it.
    _, high = cluster.watermarks(task.target, [task.partition])[task.partition]
    upper = high
    while upper > task.floor:
        lower = max(task.floor, upper - _SCAN_CHUNK)
        found: int | None = None
        for message in cluster.read_range(task.target, {task.partition: (lower, upper)}):
            headers = h.header_dict(message.headers())
            if (headers.get(run_header) == run_id and headers.get(SOURCE_TOPIC) == task.source
                    and headers.get(SOURCE_PARTITION) == str(task.partition)):
                offset = int(headers.get(SOURCE_OFFSET, "-1"))
                found = offset if found is None else max(found, offset)
        if found is not None:
            return found
        upper = lower
    return None


def copy_records(
    cluster: Cluster,
    tasks: list[CopyTask],
    *,
    run_header: str,
    run_id: str,
    transform: Transform,
    starts: Mapping[tuple[str, int], int] | None = None,
    rate: float | None = None,
    progress: Progress | None = None,
) -> CopyStats:
    """Copy every task's remaining range; interrupted, it stops with what was delivered
    (the producer is flushed on the way out, so the progress log is exact)."""
    began = time.monotonic()
    starts = starts or {}
    bucket = TokenBucket(rate) if rate else None
    producer = ReliableProducer(cluster.config)
    # A streaming pipe: up to _WINDOW copies unacknowledged at once, one shared callback.
    # Exact on SIGKILL all the same: the idempotent producer keeps each partition's
    # copies in order, so the replay topic never holds a copy whose predecessors are
    # missing, and the resume point read back from it is right.
    stream = producer.stream(_WINDOW)
    copied = skipped = 0
    try:
        by_source: dict[str, list[CopyTask]] = {}
        for task in tasks:
            by_source.setdefault(task.source, []).append(task)
        run = (run_header, run_id.encode())
        for source, group in by_source.items():
            ranges = {t.partition: (starts.get((source, t.partition), t.start), t.end)
                      for t in group}
            targets = {t.partition: t.target for t in group}
            for message in cluster.read_range(source, ranges):
                headers = transform(message)
                if headers is None:
                    skipped += 1
                    continue
                if bucket is not None:
                    bucket.take()
                partition = message.partition() or 0
                target = targets[partition]
                # A trace of its own, linked to the original (tidings.tracing.copied).
                stream.send(target, message.value() or b"", message.key(),
                            [*tracing.copied(copy_headers(headers), target), run,
                             *source_headers(message)], partition)
                copied += 1
                if progress is not None:
                    progress.advance()
        stream.drain()
    finally:
        producer.close()
        if progress is not None:
            progress.finish()
    return CopyStats(copied, skipped, time.monotonic() - began)


def copy_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``headers`` without the copy bookkeeping of an earlier copy."""
    return [(name, value) for name, value in headers if name not in COPY_HEADERS]


def source_headers(message: Message) -> list[tuple[str, bytes]]:
    """Where a copy comes from."""
    _, timestamp = message.timestamp()
    return [(SOURCE_TOPIC, str(message.topic()).encode()),
            (SOURCE_PARTITION, str(message.partition() or 0).encode()),
            (SOURCE_OFFSET, str(message.offset() or 0).encode()),
            (SOURCE_TIMESTAMP, str(timestamp).encode())]


def raw_headers(message: Message) -> list[tuple[str, bytes]]:
    """A record's headers as ``(name, bytes)`` pairs."""
    raw = message.headers()
    pairs = raw.items() if isinstance(raw, dict) else raw or []
    return [(name, value if isinstance(value, bytes) else (value or "").encode())
            for name, value in pairs]

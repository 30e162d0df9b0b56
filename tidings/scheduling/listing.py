"""What is scheduled right now: for ``tidings schedule list`` (reads, never changes).

Waiting events are the messages of the scheduling topics past the scheduler group's
committed offsets: each event is in exactly one of them (the intake or one waiting
tier) until it is delivered. Recurring schedules show their last and next tick from
the state topic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from tidings.kafka_clients import with_logger
from tidings.producer.scheduled import scheduling_of
from tidings.scheduling.envelope import read_entry
from tidings.scheduling.ticks import recurrence_of
from tidings.topology import Topology

_READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class WaitingEvent:
    schedule_id: str
    event_type: str
    event_id: str
    deliver_at: int  # epoch ms
    target_topic: str
    waiting_in: str  # the scheduling topic it sits in now
    cancelled: bool


@dataclass(frozen=True)
class RecurringStatus:
    name: str
    when: str
    event: str
    catch_up: str
    last_tick: int | None
    next_tick: int | None


def _reader(kafka_config: Mapping[str, Any], group: str) -> Consumer:
    return Consumer(with_logger({**kafka_config, "group.id": group,
                                 "enable.auto.commit": False,
                                 "isolation.level": "read_committed",
                                 "enable.partition.eof": True}))


def _read(consumer: Consumer, partitions: list[TopicPartition]) -> list[Any]:
    """Every message of ``partitions`` from their given offsets to their ends."""
    import time

    open_ends = set()
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(partition.topic, partition.partition), timeout=10)
        start = partition.offset if partition.offset >= 0 else low
        if start < high:
            open_ends.add((partition.topic, partition.partition))
            partition.offset = max(start, low)
    consumer.assign([p for p in partitions if (p.topic, p.partition) in open_ends])
    found: list[Any] = []
    deadline = time.monotonic() + _READ_TIMEOUT
    while open_ends and time.monotonic() < deadline:
        for message in consumer.consume(500, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    open_ends.discard((message.topic(), message.partition()))
                continue
            found.append(message)
    return found


def waiting_events(topology: Topology, kafka_config: Mapping[str, Any]) -> list[WaitingEvent]:
    """Every scheduled event not yet delivered, soonest first."""
    topics = scheduling_of(topology)
    partitions = topology.scheduling_partitions()
    # The scheduler group's own id, only to read its committed offsets (it never joins).
    probe = _reader(kafka_config, topics.group)
    try:
        wanted = [TopicPartition(topic, p) for topic in topics.waiting
                  for p in range(partitions)]
        committed = probe.committed(wanted, timeout=10)
    finally:
        probe.close()
    reader = _reader(kafka_config, f"{topics.group}.list.{uuid.uuid4().hex[:8]}")
    try:
        cancelled: dict[str, int] = {}
        cancel_parts = reader.list_topics(topics.cancelled, timeout=10).topics[
            topics.cancelled].partitions
        for message in _read(reader, [TopicPartition(topics.cancelled, p, 0)
                                      for p in cancel_parts]):
            try:
                when = int(json.loads(message.value() or b"{}")["cancelled_at"])
            except (ValueError, KeyError, TypeError):
                cancelled.pop((message.key() or b"").decode(), None)
                continue
            cancelled[(message.key() or b"").decode()] = when
        reader.unassign()
        messages = _read(reader, [TopicPartition(c.topic, c.partition, c.offset)
                                  for c in committed])
    finally:
        reader.close()
    waiting = []
    for message in messages:
        entry = read_entry(message.headers())
        if entry is None:
            continue
        gone = cancelled.get(entry.schedule_id)
        waiting.append(WaitingEvent(
            entry.schedule_id, entry.event_type, entry.event_id, entry.deliver_at,
            entry.target_topic, message.topic() or "",
            gone is not None and gone >= entry.scheduled_at))
    return sorted(waiting, key=lambda w: (w.deliver_at, w.schedule_id))


def recurring(topology: Topology, kafka_config: Mapping[str, Any]) -> list[RecurringStatus]:
    """Each declared schedule with its last tick (from the state topic) and next one."""
    if not topology.schedules:
        return []
    topics = scheduling_of(topology)
    reader = _reader(kafka_config, f"{topics.group}.list.{uuid.uuid4().hex[:8]}")
    last: dict[str, int] = {}
    try:
        for message in _read(reader, [TopicPartition(topics.state, 0, 0)]):
            try:
                after = int(json.loads(message.value() or b"{}")["after"])
            except (ValueError, KeyError, TypeError):
                continue
            name = (message.key() or b"").decode()
            last[name] = max(after, last.get(name, after))
    finally:
        reader.close()
    found = []
    for name, spec in topology.schedules.items():
        when = (f"cron {spec.cron} {spec.timezone}" if spec.cron
                else f"every {spec.every.label if spec.every else '?'}")
        handled = last.get(name)
        upcoming: int | None = (recurrence_of(spec).next_after(handled) if handled is not None
                                else None)
        found.append(RecurringStatus(name, when, spec.event, spec.catch_up, handled, upcoming))
    return found

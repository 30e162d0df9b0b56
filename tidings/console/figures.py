"""The console's figures, read from the cluster alone: offsets, group members, lag, rates.

Nothing here asks a service: a group's lag is its committed offsets against the end
offsets, its members come from the group coordinator, and events per second are the
change of those offsets between two snapshots. One snapshot costs a fixed number of
round trips whatever the topology's size: one metadata request, one offsets request
per side (start, end) for every partition of every topic at once, one description of
all groups, and the groups' committed offsets requested side by side.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    TopicPartition,
)

from tidings.kafka_clients import earliest_offset, fetch_metadata, latest_offset
from tidings.replay.cluster import Cluster
from tidings.topology import Topology
from tidings.topology.topology import dlq_topic_name, replay_topic_name, retry_topic_name

TP = tuple[str, int]
#: How long a snapshot waits for the group descriptions; a late answer shows the last.
_DESCRIBE_S = 3.0


@dataclass(frozen=True)
class Member:
    """One member of a consumer group, as the coordinator describes it."""

    client_id: str
    host: str
    assignment: list[TP]


@dataclass(frozen=True)
class GroupTopics:
    """The topics a group reads (main, retry tiers, replay) and its DLQ topics."""

    main: list[str]
    retry: list[tuple[str, str]]  # (tier label, topic)
    replay: list[str]
    dlq: list[str]

    @property
    def read(self) -> list[str]:
        return [*self.main, *(t for _, t in self.retry), *self.replay]


def group_topics(topology: Topology, group: str) -> GroupTopics:
    spec = topology.consumers[group]
    main = topology.topics_of_consumer(group)
    retry = [(d.label, retry_topic_name(t, group, d)) for t in main for d in spec.retry]
    replay = [replay_topic_name(t, group) for t in main]
    dlq = [dlq_topic_name(t, group) for t in main] if spec.dlq else []
    return GroupTopics(main, retry, replay, dlq)


@dataclass
class Snapshot:
    """Offsets and groups at one moment."""

    taken: float  # time.monotonic()
    took_ms: float
    brokers: int
    topics: dict[str, list[int]]  # existing topics -> partitions
    low: dict[TP, int]
    high: dict[TP, int]
    states: dict[str, str]
    members: dict[str, list[Member]]
    committed: dict[str, dict[TP, int]]  # group -> committed offsets it has
    missing: list[str] = field(default_factory=list)  # topics the topology wants, absent

    def size(self, topic: str) -> int:
        """Records the topic holds now (end minus start offsets)."""
        return sum(self.high.get((topic, p), 0) - self.low.get((topic, p), 0)
                   for p in self.topics.get(topic, []))

    def end(self, topic: str) -> int:
        return sum(self.high.get((topic, p), 0) for p in self.topics.get(topic, []))

    def lag(self, group: str, topic: str, partition: int) -> int:
        """End offset minus the group's committed offset (from the start when none)."""
        tp = (topic, partition)
        position = self.committed.get(group, {}).get(tp, self.low.get(tp, 0))
        return max(0, self.high.get(tp, 0) - max(position, self.low.get(tp, 0)))

    def topic_lag(self, group: str, topic: str) -> int:
        return sum(self.lag(group, topic, p) for p in self.topics.get(topic, []))

    def position(self, group: str, topic: str) -> int:
        """Sum of the group's positions on a topic (its committed offsets, or the start)."""
        committed = self.committed.get(group, {})
        return sum(committed.get((topic, p), self.low.get((topic, p), 0))
                   for p in self.topics.get(topic, []))


class Figures:
    """Takes snapshots of the topology's topics and groups, and keeps recent ones for
    rates."""

    def __init__(self, topology: Topology, cluster: Cluster, *, window: float = 30.0) -> None:
        self.topology = topology
        self.cluster = cluster
        self.window = window
        self._history: deque[Snapshot] = deque()
        self._lock = threading.Lock()
        self.wanted = [t.name for t in topology.desired_topics()]
        self.groups = list(topology.consumers)
        self._known: dict[str, tuple[str, list[Member]]] = {}

    def snapshot(self) -> Snapshot:
        began = time.monotonic()
        cluster = self.cluster
        metadata = fetch_metadata(cluster.admin, cluster.bootstrap, cluster.timeout)
        topics = {name: sorted(metadata.topics[name].partitions) for name in self.wanted
                  if name in metadata.topics and metadata.topics[name].error is None}
        missing = [name for name in self.wanted if name not in topics]
        everything = [TopicPartition(t, p) for t, ps in topics.items() for p in ps]
        # Both sides and every group's offsets are asked for before any answer is
        # awaited, so their round trips overlap.
        low_f = cluster.admin.list_offsets({tp: earliest_offset() for tp in everything},
                                           request_timeout=cluster.timeout) if everything \
            else {}
        high_f = cluster.admin.list_offsets({tp: latest_offset() for tp in everything},
                                            request_timeout=cluster.timeout) if everything \
            else {}
        described = cluster.admin.describe_consumer_groups(self.groups,
                                                           request_timeout=_DESCRIBE_S)
        offset_f = {g: cluster.admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(g)], request_timeout=cluster.timeout)[g]
            for g in self.groups}
        low = _offsets(low_f, cluster.timeout)
        high = _offsets(high_f, cluster.timeout)
        states: dict[str, str] = {}
        members: dict[str, list[Member]] = {}
        for group, future in described.items():
            try:
                description = future.result(timeout=_DESCRIBE_S)
            except Exception:  # KafkaException, or no answer in time: the last we knew
                states[group], members[group] = self._known.get(group, ("UNKNOWN", []))
                continue
            state = description.state
            states[group] = state.name if isinstance(state, ConsumerGroupState) else str(state)
            members[group] = [Member(str(m.client_id), str(m.host), sorted(
                (tp.topic, tp.partition) for tp in (m.assignment.topic_partitions or [])))
                for m in description.members or []]
            self._known[group] = (states[group], members[group])
        committed: dict[str, dict[TP, int]] = {}
        for group, future in offset_f.items():
            try:
                answer = future.result(timeout=cluster.timeout)
            except Exception:  # KafkaException or a timeout: no committed offsets shown
                committed[group] = {}
                continue
            committed[group] = {(tp.topic, tp.partition): int(tp.offset)
                                for tp in answer.topic_partitions or []
                                if tp.offset >= 0 and tp.topic in topics}
        for tp in list(high):
            low.setdefault(tp, 0)
        snap = Snapshot(time.monotonic(), (time.monotonic() - began) * 1000,
                        len(metadata.brokers), topics, low, high, states, members,
                        committed, missing)
        with self._lock:
            self._history.append(snap)
            while self._history and snap.taken - self._history[0].taken > self.window:
                self._history.popleft()
        return snap

    def rates(self, snap: Snapshot) -> Rates:
        """Events/s into each topic and processed by each group, from the oldest
        snapshot in the window (at least a second before ``snap``)."""
        with self._lock:
            earlier = next((s for s in self._history if snap.taken - s.taken >= 1.0), None)
        if earlier is None:
            return Rates({}, {}, 0.0)
        seconds = snap.taken - earlier.taken
        into = {t: max(0, snap.end(t) - earlier.end(t)) / seconds for t in snap.topics}
        processed: dict[str, float] = {}
        for group in self.groups:
            read = group_topics(self.topology, group).read
            now = sum(snap.position(group, t) for t in read if t in snap.topics
                      and t in earlier.topics)
            then = sum(earlier.position(group, t) for t in read if t in snap.topics
                       and t in earlier.topics)
            processed[group] = max(0, now - then) / seconds
        return Rates(into, processed, seconds)


@dataclass(frozen=True)
class Rates:
    """Events per second, over ``seconds``; empty until two snapshots exist."""

    into: dict[str, float]
    processed: dict[str, float]
    seconds: float

    def topic(self, name: str) -> str:
        return _rate(self.into.get(name), self.seconds)

    def group(self, name: str) -> str:
        return _rate(self.processed.get(name), self.seconds)


def _rate(value: float | None, seconds: float) -> str:
    if value is None or seconds <= 0:
        return "- /s"
    return f"{value:,.1f}/s" if value < 100 else f"{value:,.0f}/s"


def _offsets(futures: Mapping[Any, Any], timeout: float) -> dict[TP, int]:
    result: dict[TP, int] = {}
    for tp, future in futures.items():
        try:
            result[(tp.topic, tp.partition)] = int(future.result(timeout=timeout).offset)
        except Exception:
            continue  # a partition without a leader right now: shown as empty
    return result

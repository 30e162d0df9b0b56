"""Run a consumer group on a real broker inside a test, until it is idle.

What the pytest plugin's ``run_group`` fixture does: the production
:class:`~tidings.consumer.runtime.ConsumerRuntime` in a thread, its workers'
processor wrapped by :class:`~tidings.testing.outcomes.RecordingProcessor` (so the
report is the same kind TestBroker gives), stopped once the group's committed
offsets reach the end of every topic it reads and its outbox is empty. The messages
it sent (retries, dead letters, follow-ups) are read back from the cluster.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from tidings import headers as h
from tidings.consumer.group import GroupSetup, resolve_group
from tidings.consumer.retry import not_before
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import Database, open_database
from tidings.kafka_clients import admin_client, latest_offset, with_logger
from tidings.producer.outbox import TABLE as OUTBOX_TABLE
from tidings.testing.outcomes import (
    EventReader,
    GroupRun,
    OutcomeLog,
    recording_processor,
    reported_topics,
    sort_sent,
)
from tidings.topology import Topology

TP = tuple[str, int]

_NOT_READY = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                        KafkaError.UNKNOWN_TOPIC_OR_PART})


class GroupDidNotSettle(AssertionError):
    """The group still had work when the run's time was up."""


def topic_partitions(topology: Topology, topics: Iterable[str]) -> list[TP]:
    partitions = {t.name: t.partitions for t in topology.desired_topics()}
    return [(topic, p) for topic in dict.fromkeys(topics) for p in range(partitions[topic])]


def end_offsets(config: Mapping[str, Any], partitions: Iterable[TP],
                timeout: float = 10.0) -> dict[TP, int]:
    """The high watermark of each partition, in one request."""
    wanted = list(partitions)
    if not wanted:
        return {}
    admin = admin_client(config)
    deadline = time.monotonic() + 30
    while True:
        futures = admin.list_offsets({TopicPartition(t, p): latest_offset() for t, p in wanted},
                                     request_timeout=timeout)
        try:
            return {(tp.topic, tp.partition): int(future.result(timeout=timeout + 5).offset)
                    for tp, future in futures.items()}
        except KafkaException as exc:
            # Just-created topics answer "not leader" until their leaders are elected.
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and error.code() in _NOT_READY
            if not retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class LiveGroup:
    """One consumer group of a topology, run on a real cluster until idle, as often as a
    test likes (each run goes on from where the previous one committed)."""

    def __init__(self, topology: Topology, group: str, kafka_config: Mapping[str, Any],
                 database: Database | str, *, start: Mapping[TP, int] | None = None) -> None:
        self.topology = topology
        self.group = group
        self.config = dict(kafka_config)
        self.database = open_database(database) if isinstance(database, str) else database
        self.reader = EventReader(topology)
        self._start = dict(start or {})
        self._started = False

    def run(self, *, timeout: float = 60.0, wait_retries: bool = True,
            settle: float = 0.3) -> GroupRun:
        """Run the group until idle and report what it did.

        Idle: every event of its main and replay topics is finished and committed, its
        outbox is relayed, and (``wait_retries``) its retry tiers are empty, which takes
        as long as the tiers' delays; without ``wait_retries`` events still waiting in a
        tier are left there (a later run handles them when due).
        """
        log = OutcomeLog()
        setup = resolve_group(self.topology, self.group, self.database)
        runtime_class = type("RecordingRuntime", (ConsumerRuntime,),
                             {"processor_class": recording_processor(log)})
        runtime: ConsumerRuntime = runtime_class(setup, self.config, RuntimeOptions(
            commit_interval=0.1, session_timeout_ms=6000, shutdown_timeout=30.0))
        probe = Consumer(with_logger({**self.config, "group.id": self.group,
                                      "enable.auto.commit": False}))
        reader = Consumer(with_logger({**self.config, "group.id": f"tidings-test-{uuid.uuid4()}",
                                       "enable.auto.commit": False}))
        consumed = topic_partitions(self.topology, setup.topics)
        reported = topic_partitions(self.topology, reported_topics(self.topology, setup))
        try:
            if not self._started:
                self._commit_start(probe, consumed)
                self._started = True
            marks = end_offsets(self.config, reported)
            failure: list[BaseException] = []

            def work() -> None:
                try:
                    runtime.run()
                except BaseException as exc:
                    failure.append(exc)

            thread = threading.Thread(target=work, name=f"tidings-test-{self.group}",
                                      daemon=True)
            thread.start()
            try:
                self._wait_idle(setup, probe, reader, consumed, timeout=timeout,
                                wait_retries=wait_retries, settle=settle,
                                alive=lambda: thread.is_alive())
            finally:
                runtime.stop()
                thread.join(timeout=60)
            if failure:
                raise failure[0]
            if thread.is_alive():
                raise GroupDidNotSettle(f"{self.group}: the runtime did not stop")
            log.check()
            ends = end_offsets(self.config, reported)
            run = GroupRun(self.group, outcomes=list(log.outcomes))
            ranges = {tp: (marks.get(tp, 0), end) for tp, end in ends.items()}
            for message in read_ranges(reader, ranges):
                sort_sent(run, setup, self.reader.sent(message))
            return run
        finally:
            probe.close()
            reader.close()

    def _commit_start(self, probe: Consumer, consumed: list[TP]) -> None:
        """Where this test's first run starts: the ends the topics had when the test
        began, so events of earlier tests on the session's cluster are not seen."""
        offsets = [TopicPartition(t, p, self._start[(t, p)]) for t, p in consumed
                   if (t, p) in self._start]
        if offsets:
            probe.commit(offsets=offsets, asynchronous=False)

    def _wait_idle(self, setup: GroupSetup, probe: Consumer, reader: Consumer,
                   consumed: list[TP], *, timeout: float, wait_retries: bool, settle: float,
                   alive: Any) -> None:
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        last: dict[TP, int] = {}
        while True:
            ends = end_offsets(self.config, consumed)
            committed = {(tp.topic, tp.partition): tp.offset for tp in probe.committed(
                [TopicPartition(t, p) for t, p in consumed], timeout=10)}
            behind = {tp: (committed.get(tp, -1), end) for tp, end in ends.items()
                      if max(0, committed.get(tp, -1)) < end}
            if not wait_retries:
                behind = {tp: at for tp, at in behind.items()
                          if not (setup.is_retry_topic(tp[0])
                                  and _waiting(reader, tp, max(0, at[0])))}
            idle = not behind and _outbox_empty(setup) and ends == last
            last = ends
            now = time.monotonic()
            if idle:
                quiet_since = quiet_since or now
                if now - quiet_since >= settle:
                    return
            else:
                quiet_since = None
            if not alive():
                return  # it failed: run() raises its error
            if now > deadline:
                raise GroupDidNotSettle(
                    f"{self.group}: not idle after {timeout:.0f}s; behind (committed, end): "
                    + ", ".join(f"{t}[{p}] {c}/{e}" for (t, p), (c, e) in sorted(behind.items()))
                    + ("" if behind else "; its outbox still has rows to relay"))
            time.sleep(0.1)


def _waiting(reader: Consumer, tp: TP, offset: int) -> bool:
    """Whether the retry partition's head event (at ``offset``) is not due yet."""
    reader.assign([TopicPartition(tp[0], tp[1], offset)])
    try:
        message = reader.poll(5)
    finally:
        reader.unassign()
    if message is None or message.error() is not None:
        return False
    due = not_before(h.HeaderView(message.headers()))
    return due is not None and due > time.time() * 1000


def _outbox_empty(setup: GroupSetup) -> bool:
    if setup.preparer is None:
        return True
    connection = setup.database.connect()
    try:
        row = connection.execute(
            f"SELECT COUNT(*) FROM {OUTBOX_TABLE} WHERE sent_at_ms IS NULL").fetchone()
        return int(row[0]) == 0
    except Exception:  # no outbox table yet: the runtime has not prepared the database
        return False
    finally:
        connection.close()


def read_ranges(consumer: Consumer, ranges: Mapping[TP, tuple[int, int]],
                timeout: float = 30.0) -> list[Message]:
    """The messages in ``[start, end)`` of each partition."""
    remaining = {tp: span for tp, span in ranges.items() if span[1] > span[0]}
    if not remaining:
        return []
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in remaining.items()])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is not None:
                    continue
                tp = (message.topic() or "", message.partition() or 0)
                span = remaining.get(tp)
                offset = message.offset() or 0
                if span is None or offset >= span[1]:
                    continue
                found.append(message)
                if offset + 1 >= span[1]:
                    del remaining[tp]
    finally:
        consumer.unassign()
    if remaining:
        raise GroupDidNotSettle(f"could not read back {sorted(remaining)} within {timeout:.0f}s")
    return found


def prefixed(topology: Topology, prefix: str) -> Topology:
    """``topology`` with every topic name (and the topology's name) prefixed, so one
    test session's topics never meet another's on a shared cluster."""
    if not prefix:
        return topology
    return dataclasses.replace(
        topology,
        name=f"{prefix}{topology.name}",
        topics={f"{prefix}{name}": spec for name, spec in topology.topics.items()},
        events={name: spec.model_copy(update={"topic": f"{prefix}{spec.topic}"})
                for name, spec in topology.events.items()},
    )

"""TestBroker: a consumer group's production code path, with Kafka replaced by memory.

Unit tests of handlers need no broker, and should not need to fake one's behaviour by
hand. ``TestBroker(topology)`` runs what ``tidings run`` runs, from the same
:class:`~tidings.consumer.processing.EventProcessor`: the codec (Avro single-object
bytes, as on the wire), model validation, the idempotency claim in the group's real
database (SQLite, a file per group), the handler in its transaction, retry-tier and
DLQ routing with the real headers, and follow-up events through the group's outbox
and its relay. Only the transport differs: topics are lists in memory, and time is
a clock the test moves (:meth:`TestBroker.advance`), so a 10-minute retry tier takes
no time at all::

    broker = TestBroker("topology.yaml", directory=tmp_path)
    order_id = broker.publish(OrderCreated(...))
    run = broker.run("inventory")
    assert run.outcomes_of(order_id) == ["processed"]
    assert [type(f.event) for f in run.follow_ups] == [InventoryReserved]

The delivery order follows Kafka's guarantees, no more: per partition in order, a
retry tier's partition held while its head event is not due (the runtime pauses it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from confluent_kafka import Message

from tidings import headers as h
from tidings.consumer.group import GroupSetup, resolve_group
from tidings.consumer.idempotency import IdempotencyStore
from tidings.consumer.metrics import ConsumerMetrics
from tidings.consumer.retry import FailureRoute, RetryPolicy, not_before
from tidings.db import Database, open_database, transaction
from tidings.durations import parse_duration
from tidings.errors import ConfigError
from tidings.producer.outbox import OutboxRelay, ensure_outbox_table
from tidings.producer.prepare import EventPreparer
from tidings.testing.memory import InMemoryProducer, InMemoryTopics, MemoryMessage, wall_clock_ms
from tidings.testing.outcomes import (
    EventReader,
    GroupRun,
    OutcomeLog,
    RecordingProcessor,
    recording_processor,
    reported_topics,
    sort_sent,
)
from tidings.topology import Topology, load_topology
from tidings.topology.model import ProducerSpec

if TYPE_CHECKING:
    from tidings.codec.events import Event

#: The producer TestBroker publishes as when no service of the topology declares an event.
TEST_PRODUCER = "tidings-test"

#: Events per batch for groups without ``batch:``: the runtime's fetch size.
_FETCH = 500


@dataclasses.dataclass(frozen=True)
class _ClockedPolicy(RetryPolicy):
    """The group's retry policy, reading the test's clock (``not-before`` is epoch ms)."""

    clock: Callable[[], int] = wall_clock_ms

    def route(self, source_topic: str, attempt: int, *, retryable: bool,
              now_ms: int | None = None) -> FailureRoute:
        return super().route(source_topic, attempt, retryable=retryable,
                             now_ms=self.clock() if now_ms is None else now_ms)


@dataclasses.dataclass
class _Group:
    setup: GroupSetup
    processor: RecordingProcessor
    log: OutcomeLog
    relay: OutboxRelay | None
    metrics: ConsumerMetrics
    #: Next offset to deliver, per (topic, partition) the group reads.
    positions: dict[tuple[str, int], int]


class TestBroker:
    """One topology's topics in memory and its consumer groups' real processing.

    ``directory`` holds each group's SQLite database (``<group>.db``; a temporary
    directory, removed by :meth:`close`, when not given); ``databases`` maps a group
    to a URL of its own (a PostgreSQL one, say). The clock starts at ``start`` (default:
    now) and moves only by :meth:`advance`.
    """

    __test__ = False  # a pytest collector must not take it for a test class

    def __init__(self, topology: Topology | str | Path, *, directory: str | Path | None = None,
                 databases: Mapping[str, str] | None = None,
                 start: datetime | None = None) -> None:
        self.topology = topology if isinstance(topology, Topology) else load_topology(topology)
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None \
            else Path(tempfile.mkdtemp(prefix="tidings-testbroker-"))
        self._database_urls = dict(databases or {})
        self._now_ms = int((start or datetime.now(UTC)).timestamp() * 1000)
        self.topics = InMemoryTopics(
            {t.name: t.partitions for t in self.topology.desired_topics()}, self.now_ms,
            self.topology.cluster.partitioner)
        self.producer = InMemoryProducer(self.topics)
        self.reader = EventReader(self.topology)
        self._groups: dict[str, _Group] = {}
        self._preparers: dict[str, EventPreparer] = {}

    # -- time ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The broker's clock, epoch milliseconds."""
        return self._now_ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now_ms / 1000, UTC)

    def advance(self, by: str | float | timedelta) -> None:
        """Move the clock on: ``"10s"``, ``"1m"``, seconds, or a timedelta. Events in a
        retry tier become due when the clock passes their ``not-before``."""
        if isinstance(by, str):
            millis = parse_duration(by).millis
        elif isinstance(by, timedelta):
            millis = int(by.total_seconds() * 1000)
        else:
            millis = int(by * 1000)
        if millis < 0:
            raise ValueError("the clock only moves forward")
        self._now_ms += millis

    # -- publishing ---------------------------------------------------------------------

    def publish(self, event: Event, *, service: str | None = None, event_id: str | None = None,
                traceparent: str | None = None) -> str:
        """Publish a typed event as ``service`` would (default: a service the topology
        declares for it, else a test producer); returns its event id. Publishing again
        with the same ``event_id`` is a redelivery, which the group skips as a duplicate.
        """
        prepared = self._preparer(type(event).event_type, service).prepare(
            event, event_id=event_id, traceparent=traceparent, occurred_at=self.now())
        self.producer.send(prepared.topic, prepared.value, key=prepared.key,
                           headers=prepared.headers, event_id=prepared.event_id).result()
        return prepared.event_id

    def publish_many(self, events: Iterable[Event], *, service: str | None = None) -> list[str]:
        return [self.publish(event, service=service) for event in events]

    def publish_raw(self, topic: str, value: bytes, *, key: bytes | None = None,
                    headers: Mapping[str, str] | None = None,
                    partition: int | None = None) -> MemoryMessage:
        """Write bytes to a topic as they are: poison, or a hand-made delivery."""
        encoded = [(name, text.encode()) for name, text in (headers or {}).items()]
        return self.topics.append(topic, value, key=key, headers=encoded, partition=partition)

    def _preparer(self, event_type: str, service: str | None) -> EventPreparer:
        if event_type not in self.topology.events:
            raise ConfigError(f"no event {event_type!r} in {self.topology.path.name}")
        if service is None:
            declared = [name for name, spec in self.topology.producers.items()
                        if event_type in spec.publishes]
            service = declared[0] if declared else TEST_PRODUCER
        preparer = self._preparers.get(service)
        if preparer is None:
            topology = self.topology
            if service == TEST_PRODUCER and service not in topology.producers:
                topology = dataclasses.replace(topology, producers={
                    **topology.producers,
                    TEST_PRODUCER: ProducerSpec(publishes=list(topology.events))})
            preparer = EventPreparer(topology, service, catalogue=self.reader.catalogue)
            self._preparers[service] = preparer
        return preparer

    # -- running groups -----------------------------------------------------------------

    def run(self, group: str, *, through_retries: bool = False,
            max_batches: int = 10_000) -> GroupRun:
        """Deliver to ``group`` every event that is due, until none is; return what
        happened. Events waiting in a retry tier stay there (move the clock with
        :meth:`advance`), unless ``through_retries``: then the clock jumps to each next
        due event until the group has nothing left, and the run shows every attempt."""
        state = self._group(group)
        marks = self._marks(state.setup)
        outcomes_before = len(state.log.outcomes)
        batches = 0
        while True:
            batch = self._due(state)
            if not batch:
                due = self._next_due(state) if through_retries else None
                if due is None:
                    break
                self._now_ms = max(self._now_ms, due)
                continue
            batches += 1
            if batches > max_batches:
                raise AssertionError(f"{group}: still busy after {max_batches} batches "
                                     "(does a handler publish what it consumes?)")
            state.processor.handle(cast(Sequence[Message], batch))
            for message in batch:
                tp = (message.topic(), message.partition())
                state.positions[tp] = message.offset() + 1
            if state.relay is not None:
                while state.relay.relay_once():
                    pass
        state.log.check()
        return self._report(state, marks, outcomes_before)

    def pending(self, group: str) -> list[MemoryMessage]:
        """What ``group`` has not consumed yet, due or not (retries waiting included)."""
        state = self._group(group)
        return [m for (topic, partition), start in state.positions.items()
                for m in self.topics.read(topic, partition, start)]

    def _due(self, state: _Group) -> list[MemoryMessage]:
        limit = state.setup.spec.batch.max_events if state.setup.spec.batch else _FETCH
        batch: list[MemoryMessage] = []
        for (topic, partition), start in state.positions.items():
            retry = state.setup.is_retry_topic(topic)
            for message in self.topics.read(topic, partition, start):
                if retry and self._waiting(message):
                    break  # the partition is paused at its head until that is due
                batch.append(message)
                if len(batch) >= limit:
                    return batch
        return batch

    def _waiting(self, message: MemoryMessage) -> bool:
        due = not_before(h.HeaderView(message.headers()))
        return due is not None and due > self._now_ms

    def _next_due(self, state: _Group) -> int | None:
        heads = [not_before(h.HeaderView(messages[0].headers()))
                 for (topic, partition), start in state.positions.items()
                 if state.setup.is_retry_topic(topic)
                 and (messages := self.topics.read(topic, partition, start))]
        due = [at for at in heads if at is not None]
        return min(due) if due else None

    # -- what a run did -------------------------------------------------------------------

    def _marks(self, setup: GroupSetup) -> dict[tuple[str, int], int]:
        marks: dict[tuple[str, int], int] = {}
        for topic in reported_topics(self.topology, setup):
            for partition in range(self.topics.partition_count(topic)):
                marks[(topic, partition)] = self.topics.end(topic, partition)
        return marks

    def _report(self, state: _Group, marks: Mapping[tuple[str, int], int],
                outcomes_before: int) -> GroupRun:
        setup = state.setup
        run = GroupRun(setup.group, outcomes=state.log.outcomes[outcomes_before:])
        for (topic, partition), start in marks.items():
            for message in self.topics.read(topic, partition, start):
                sent = self.reader.sent(cast(Message, message))
                sort_sent(run, setup, sent)
        return run

    # -- groups and their databases -----------------------------------------------------

    def database(self, group: str) -> Database:
        """The group's database (its tables exist: the group is prepared on first use)."""
        return self._group(group).setup.database

    @contextlib.contextmanager
    def connect(self, group: str) -> Iterator[Any]:
        """A connection to the group's database, closed after the block: seed data, or
        look at the handler's effects."""
        connection = self.database(group).connect()
        try:
            yield connection
        finally:
            connection.close()

    def query(self, group: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT on the group's database (``?`` placeholders)."""
        database = self.database(group)
        with self.connect(group) as connection:
            return [tuple(row) for row in
                    connection.execute(database.sql(sql), tuple(params)).fetchall()]

    def metrics(self, group: str) -> ConsumerMetrics:
        """The group's Prometheus metrics, as ``/metrics`` would serve them."""
        return self._group(group).metrics

    def _group(self, group: str) -> _Group:
        state = self._groups.get(group)
        if state is not None:
            return state
        url = self._database_urls.get(group) or f"sqlite:///{self.directory / f'{group}.db'}"
        setup = resolve_group(self.topology, group, open_database(url))
        policy = setup.policy
        setup = dataclasses.replace(setup, policy=_ClockedPolicy(
            policy.group, policy.tiers, policy.dlq, clock=self.now_ms))
        prepare_database(setup)
        log = OutcomeLog()
        metrics = ConsumerMetrics(group)
        processor = recording_processor(log)(setup, self.producer, metrics)
        relay = OutboxRelay(setup.database, self.producer) if setup.preparer else None
        positions = {(topic, partition): 0 for topic in setup.topics
                     for partition in range(self.topics.partition_count(topic))}
        state = _Group(setup, processor, log, relay, metrics, positions)
        self._groups[group] = state
        return state

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the groups' connections (and remove the temporary directory, if ours)."""
        for state in self._groups.values():
            state.processor.close()
            if state.relay is not None:
                state.relay.stop()
        self._groups.clear()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> TestBroker:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def prepare_database(setup: GroupSetup) -> None:
    """What the runtime does to a group's database before it consumes: the idempotency
    tables, the outbox table when the group publishes, the handler module's setup()."""
    database = setup.database
    connection = database.connect()
    try:
        IdempotencyStore(database, setup.group).create(connection)
        if setup.preparer is not None:
            ensure_outbox_table(database, connection)
        if setup.setup_hook is not None:
            with transaction(connection):
                setup.setup_hook(connection, database)
    finally:
        connection.close()

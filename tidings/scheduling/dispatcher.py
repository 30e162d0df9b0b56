"""The scheduler service behind ``tidings run scheduler``.

One loop, one Kafka consumer (a consumer group over the intake topic, the waiting
tiers and the state topic) and one transactional producer. Each turn of the loop
takes what was fetched and, in **one Kafka transaction**, produces every move it
decided on and commits the offsets of the messages it consumed:

* an event that is due is delivered to its real topic, with its own headers (its
  ``event-id`` unchanged); its lateness is observed;
* an event that is not due moves to the longest waiting tier that does not overshoot
  its time (``<base>.wait.1h``), carrying ``not-before`` = now + that tier (with less
  than 100 ms to go, the 100 ms tier: at most that late, never early);
* a cancelled event is dropped;
* a partition whose head's ``not-before`` is ahead is paused and rewound to that head
  until it is due: never slept on, and every other partition keeps moving. Within a
  tier every event waits the same time, so the heads fall due in order: no event waits
  behind another. Nothing but those heads is held in memory, so a
  delay of 30 days costs a few dozen hops, not memory;
* the instance that holds the state topic's partition emits the ticks of recurring
  schedules and records each schedule's last tick there, in the same transaction.

Why transactions: this is a pure Kafka-to-Kafka consume-transform-produce loop, the
case they exist for. The produce and the offset commit happen together or not at
all, so a scheduler killed at any point (kill -9 included) redoes exactly the turn
it had not committed, and readers (``isolation.level=read_committed``, librdkafka's
default) never see the aborted attempt. Several instances share the work as a
consumer group; the offset commit carries the group generation (KIP-447), so an
instance that lost its partitions but still runs is fenced: its transaction aborts
instead of delivering a second copy. The event keeps its ``event-id`` either way,
so consumers' idempotency would also absorb a duplicate from any other source.

Time comes from ``clock`` (wall time by default; tests inject one). Due times are
absolute (epoch ms in headers), so a clock that jumps forward delivers what is due,
once, and a clock that jumps back delivers nothing early: it only waits longer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from tidings.consumer.metrics import HealthState, serve_metrics
from tidings.errors import TidingsError
from tidings.kafka_clients import admin_client, fetch_metadata, with_logger
from tidings.producer.prepare import EventPreparer
from tidings.producer.scheduled import scheduling_of
from tidings.scheduling import envelope
from tidings.scheduling.cancellations import CancellationIndex
from tidings.scheduling.metrics import SchedulerMetrics
from tidings.scheduling.ticks import recurrence_of, tick_event
from tidings.timing.recurrence import Recurrence, due_ticks
from tidings.topology import Topology
from tidings.topology import scheduling as names

log = logging.getLogger("tidings.scheduler")

TP = tuple[str, int]


class SchedulerNotReady(TidingsError):
    """The scheduling topics are missing, or the cluster refuses transactions."""


@dataclass
class SchedulerOptions:
    #: A stable name for this instance (a pod name). It names the transactional
    #: producer, so a restarted instance aborts its predecessor's open transaction at
    #: once; without one, an instance killed mid-transaction holds up readers of the
    #: partitions it wrote to until ``transaction_timeout_ms``.
    instance_id: str | None = None
    metrics_port: int | None = None
    fetch_batch: int = 500
    session_timeout_ms: int = 10_000
    transaction_timeout_ms: int = 10_000
    #: Wall time in seconds; tests inject a clock that jumps.
    clock: Callable[[], float] = time.time
    preflight: bool = True
    #: How often the ``waiting`` gauge is refreshed (seconds).
    waiting_interval: float = 5.0


@dataclass
class _Move:
    """One message to produce in this turn's transaction."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None = None


@dataclass
class _Turn:
    """What one turn of the loop decided, committed in one transaction."""

    moves: list[_Move] = field(default_factory=list)
    offsets: dict[TP, int] = field(default_factory=dict)
    first: dict[TP, int] = field(default_factory=dict)  # rewind points if it aborts
    stopped: set[TP] = field(default_factory=set)       # held during this turn
    dispatched: list[tuple[str, float]] = field(default_factory=list)  # type, lateness s
    hops: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    ticks: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name: after, n, skip

    def empty(self) -> bool:
        return not (self.moves or self.offsets or self.ticks)


class Scheduler:
    """Delivers scheduled events and emits recurring ticks until :meth:`stop`."""

    def __init__(self, topology: Topology, kafka_config: Mapping[str, Any],
                 options: SchedulerOptions | None = None) -> None:
        self.topology = topology
        self.topics = scheduling_of(topology)
        self.options = options or SchedulerOptions()
        self.kafka_config = dict(kafka_config)
        self.instance = self.options.instance_id or uuid.uuid4().hex[:8]
        self.clock = self.options.clock
        self.metrics = SchedulerMetrics()
        self.health = HealthState()
        self.metrics_server: Any = None
        self._stopping = threading.Event()
        self._held: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}
        self._waiting_topics = frozenset(self.topics.waiting)
        self._intake = self.topics.intake
        self._state_tp: TP = (self.topics.state, 0)
        self._known_targets = frozenset(topology.topics)
        # Recurring schedules: the last tick handled, once the state partition is read.
        self._recurrences: dict[str, Recurrence] = {
            name: recurrence_of(spec) for name, spec in topology.schedules.items()}
        self._preparers: dict[str, EventPreparer] = {}
        self.state: dict[str, int] = {}
        self._next_tick: dict[str, int | None] = {}
        self._owns_state = False
        self._state_loaded = False
        self._state_position = 0
        self._cancellations: CancellationIndex | None = None
        #: The partitions this instance holds now (replaced, never mutated).
        self.assigned: frozenset[TP] = frozenset()

    @property
    def transactional_id(self) -> str:
        return f"{self.topics.group}.{self.instance}"

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def stop(self) -> None:
        """Finish the current turn and leave the group (thread-safe)."""
        self._stopping.set()

    @property
    def metrics_port(self) -> int | None:
        return int(self.metrics_server.server_address[1]) if self.metrics_server else None

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        if self.options.preflight:
            self._preflight()
        if self.options.metrics_port is not None:
            self.metrics_server = serve_metrics(self.metrics, self.health,
                                                self.options.metrics_port)
        producer = self._producer()
        self._cancellations = CancellationIndex(
            self.kafka_config, self.topics.cancelled, clock=self.clock,
            keep_ms=self.topology.scheduling_spec.max_delay.millis + names.SLACK_MS)
        consumer: Consumer | None = None
        try:
            self._catch_up_cancellations()
            config = {
                **self.kafka_config,
                "group.id": self.topics.group,
                "client.id": f"{self.topics.group}-{self.instance}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                # A partition resumed when its head falls due joins the next fetch; a
                # broker long-poll of 500 ms (the default) would make it that late.
                "fetch.wait.max.ms": 50,
                "session.timeout.ms": self.options.session_timeout_ms,
                "heartbeat.interval.ms": max(500, self.options.session_timeout_ms // 10),
            }
            if self.options.instance_id:
                config["group.instance.id"] = self.transactional_id
            consumer = Consumer(with_logger(config))
            subscribed = [*self.topics.waiting, self.topics.state]
            consumer.subscribe(subscribed, on_assign=self._on_assign,
                               on_revoke=self._on_revoke, on_lost=self._on_revoke)
            self.health.started = True
            threading.Thread(target=self._waiting_loop, name="tidings-scheduler-waiting",
                             daemon=True).start()
            log.info("scheduler %s: %s from %s (transactional id %s); %d recurring "
                     "schedule(s); metrics %s", self.instance, self.topics.intake,
                     self.kafka_config.get("bootstrap.servers"), self.transactional_id,
                     len(self._recurrences),
                     f"http://127.0.0.1:{self.metrics_port}/metrics"
                     if self.metrics_port is not None else "off")
            while not self._stopping.is_set():
                self._turn(consumer, producer)
        finally:
            if consumer is not None:
                consumer.close()
            self._cancellations.close()
            producer.flush(5)
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
            log.info("scheduler %s: stopped", self.instance)

    def _preflight(self) -> None:
        bootstrap = str(self.kafka_config.get("bootstrap.servers", "?"))
        metadata = fetch_metadata(admin_client(self.kafka_config), bootstrap, 10)
        wanted = [*self.topics.waiting, self.topics.cancelled, self.topics.state]
        missing = [t for t in wanted if t not in metadata.topics
                   or metadata.topics[t].error is not None]
        if missing:
            raise SchedulerNotReady(
                f"the scheduler cannot start: missing on {bootstrap}: {', '.join(missing)}. "
                f"Run `tidings topology apply -f {self.topology.path.name}`")

    def _producer(self) -> Producer:
        timeout = self.options.transaction_timeout_ms
        producer = Producer(with_logger({
            **self.kafka_config,
            "transactional.id": self.transactional_id,
            "transaction.timeout.ms": timeout,
            "message.timeout.ms": timeout,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }))
        try:
            # Fences any earlier producer with this id and aborts its open transaction.
            producer.init_transactions(30)
        except KafkaException as exc:
            raise SchedulerNotReady(
                f"the scheduler could not start its transactional producer "
                f"{self.transactional_id}: {exc.args[0].str() if exc.args else exc}") from None
        return producer

    def _catch_up_cancellations(self) -> None:
        """Read every cancellation there is before delivering anything."""
        assert self._cancellations is not None
        deadline = time.monotonic() + 60
        while not self._cancellations.caught_up:
            if self._stopping.is_set() or time.monotonic() > deadline:
                if not self._stopping.is_set():
                    raise SchedulerNotReady(f"could not read {self.topics.cancelled} to its "
                                            "end within 60s")
                return
            if not self._cancellations.poll():
                time.sleep(0.02)

    # -- one turn ----------------------------------------------------------------------

    def _turn(self, consumer: Consumer, producer: Producer) -> None:
        self.health.polled()
        self._resume_due(consumer)
        assert self._cancellations is not None
        self._cancellations.poll()
        turn = _Turn()
        for message in self._fetch(consumer):
            self._take(consumer, message, turn)
        if self._owns_state and self._state_loaded:
            self._tick(turn)
        if not turn.empty():
            self._commit(consumer, producer, turn)
        self.metrics.held.set(len(self._held))

    def _fetch(self, consumer: Consumer) -> list[Message]:
        ready: list[Message] = consumer.consume(self.options.fetch_batch, timeout=0)
        if ready:
            return ready
        wait = 0.1
        if self._held:
            # Wake for the earliest held head rather than a whole poll interval later.
            soonest = min(self._held.values()) - self.now_ms()
            wait = max(0.005, min(wait, soonest / 1000))
        first = consumer.poll(wait)
        if first is None:
            return []
        return [first, *consumer.consume(self.options.fetch_batch - 1, timeout=0)]

    def _take(self, consumer: Consumer, message: Message, turn: _Turn) -> None:
        topic, partition = message.topic() or "", message.partition() or 0
        tp = (topic, partition)
        offset = message.offset() or 0
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._at_end(tp, offset, turn)
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("scheduler: consumer error: %s", error.str())
            return
        if tp == self._state_tp:
            self._read_state(message)
            return
        if tp in self._held or tp in turn.stopped or topic not in self._waiting_topics:
            return
        turn.first.setdefault(tp, offset)
        entry = envelope.read_entry(message.headers())
        if entry is None or entry.target_topic not in self._known_targets:
            what = "no scheduling headers" if entry is None \
                else f"unknown target topic {entry.target_topic!r}"
            log.error("scheduler: dropping %s[%d]@%d: %s", topic, partition, offset, what)
            self.metrics.invalid.inc()
            turn.offsets[tp] = offset + 1
            return
        now = self.now_ms()
        if entry.not_before is not None and entry.not_before > now:
            self._hold(consumer, tp, offset, entry.not_before, turn)
            return
        assert self._cancellations is not None
        if topic == self._intake:
            turn.received.append(entry.event_type)
        if self._cancellations.is_cancelled(entry.schedule_id, entry.scheduled_at):
            log.info("scheduler: %s %s (schedule %s) cancelled", entry.event_type,
                     entry.event_id, entry.schedule_id)
            turn.cancelled.append(entry.event_type)
            turn.offsets[tp] = offset + 1
            return
        remaining = entry.deliver_at - now
        if remaining <= 0:
            turn.moves.append(_Move(entry.target_topic, message.value(), entry.target_key,
                                    envelope.delivery_headers(message.headers())))
            turn.dispatched.append((entry.event_type, -remaining / 1000))
        else:
            # Never waiting at a head for its own time: that would hold up the events
            # behind it. A fixed-delay tier keeps the partition's heads in due order.
            tier = names.tier_for(remaining)
            turn.moves.append(_Move(
                self.topics.tier(tier), message.value(), message.key(),
                envelope.hop_headers(message.headers(), now + tier.millis), partition))
            turn.hops.append(tier.label)
        turn.offsets[tp] = offset + 1

    def _at_end(self, tp: TP, offset: int, turn: _Turn) -> None:
        if tp == self._state_tp:
            self._state_position = offset
            if self._owns_state and not self._state_loaded:
                self._state_loaded = True
                log.info("scheduler %s: runs the recurring schedules (%s)", self.instance,
                         ", ".join(sorted(self._recurrences)) or "none declared")
            return
        # Idle at the end: commit past the transaction markers, so lag reads 0.
        if tp not in self._held and tp not in turn.stopped \
                and self._committed.get(tp) != offset and tp[0] in self._waiting_topics:
            turn.offsets[tp] = max(offset, turn.offsets.get(tp, 0))

    def _hold(self, consumer: Consumer, tp: TP, offset: int, due_ms: int, turn: _Turn) -> None:
        # Pause and rewind to the head event: the partition costs nothing while it waits
        # and is fetched again from that event once it is due.
        consumer.pause([TopicPartition(tp[0], tp[1])])
        consumer.seek(TopicPartition(tp[0], tp[1], offset))
        self._held[tp] = due_ms
        turn.stopped.add(tp)
        if self._committed.get(tp, -1) < offset:
            turn.offsets[tp] = offset  # up to the head: transaction markers before it go

    def _resume_due(self, consumer: Consumer) -> None:
        if not self._held:
            return
        now = self.now_ms()
        due = [tp for tp, at in self._held.items() if at <= now]
        for tp in due:
            del self._held[tp]
        if due:
            consumer.resume([TopicPartition(t, p) for t, p in due])

    # -- recurring schedules -----------------------------------------------------------

    def _read_state(self, message: Message) -> None:
        self._state_position = (message.offset() or 0) + 1
        name = (message.key() or b"").decode("utf-8", "replace")
        try:
            after = int(json.loads(message.value() or b"{}")["after"])
        except (ValueError, KeyError, TypeError):
            return
        if after > self.state.get(name, -1):
            self.state[name] = after
            self._next_tick.pop(name, None)

    def _tick(self, turn: _Turn) -> None:
        now = self.now_ms()
        for name, recurrence in self._recurrences.items():
            after = self.state.get(name)
            if after is None:
                # First sight: ticks start after now (recorded, so a restart after a
                # missed tick still knows it was missed).
                turn.ticks[name] = (now, 0, 0)
                turn.moves.append(self._state_move(name, now))
                continue
            if name not in self._next_tick:
                self._next_tick[name] = recurrence.next_after(after)
            upcoming = self._next_tick[name]
            if upcoming is None or upcoming > now:
                continue
            spec = self.topology.schedules[name]
            due = due_ticks(recurrence, after, now, spec.catch_up)
            preparer = self._preparer(spec.event)
            for tick in due.emit:
                prepared = tick_event(self.topology, name, preparer, tick)
                turn.moves.append(_Move(prepared.topic, prepared.value, prepared.key,
                                        prepared.headers))
            turn.ticks[name] = (due.after, len(due.emit), due.skipped)
            turn.moves.append(self._state_move(name, due.after))

    def _state_move(self, name: str, after: int) -> _Move:
        return _Move(self.topics.state, json.dumps({"after": after}).encode(), name.encode(),
                     [], 0)

    def _preparer(self, event: str) -> EventPreparer:
        service = self.topology.producer_of(event)
        assert service is not None  # validation refuses such a schedule
        if service not in self._preparers:
            self._preparers[service] = EventPreparer(self.topology, service)
        return self._preparers[service]

    # -- the transaction ---------------------------------------------------------------

    def _commit(self, consumer: Consumer, producer: Producer, turn: _Turn) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in turn.offsets.items()]
        if turn.ticks:
            # Ties the ticks to this member's generation: a fenced instance cannot commit.
            offsets.append(TopicPartition(*self._state_tp, self._state_position))
        try:
            producer.begin_transaction()
            for move in turn.moves:
                self._produce(producer, move)
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(),
                                                 30)
            self._commit_transaction(producer)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError) or error.fatal() \
                    or not error.txn_requires_abort():
                raise
            log.warning("scheduler: transaction aborted (%s); the turn is redone", error.str())
            producer.abort_transaction(30)
            self.metrics.aborted.inc()
            self._rewind(consumer, turn)
            return
        self.metrics.transactions.inc()
        for tp, offset in turn.offsets.items():
            self._committed[tp] = offset
        for event_type, late in turn.dispatched:
            self.metrics.dispatched.labels(event_type).inc()
            self.metrics.lateness.labels(event_type).observe(max(0.0, late))
        for tier in turn.hops:
            self.metrics.hops.labels(tier).inc()
        for event_type in turn.cancelled:
            self.metrics.cancelled.labels(event_type).inc()
        for event_type in turn.received:
            self.metrics.received.labels(event_type).inc()
        for name, (after, emitted, skipped) in turn.ticks.items():
            self.state[name] = after
            self._next_tick.pop(name, None)
            if emitted:
                self.metrics.ticks.labels(name).inc(emitted)
            if skipped:
                self.metrics.ticks_skipped.labels(name).inc(skipped)
                log.info("scheduler: %s skipped %d missed tick(s) (catch_up: %s)", name,
                         skipped, self.topology.schedules[name].catch_up)

    @staticmethod
    def _commit_transaction(producer: Producer) -> None:
        for attempt in range(5):
            try:
                producer.commit_transaction(30)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not isinstance(error, KafkaError) or not error.retriable() or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    @staticmethod
    def _produce(producer: Producer, move: _Move) -> None:
        kwargs: dict[str, Any] = {"value": move.value, "key": move.key,
                                  "headers": move.headers}
        if move.partition is not None:
            kwargs["partition"] = move.partition
        while True:
            try:
                producer.produce(move.topic, **kwargs)
                return
            except BufferError:
                producer.poll(0.05)  # the local queue is full: let deliveries drain it

    def _rewind(self, consumer: Consumer, turn: _Turn) -> None:
        """After an abort, fetch the turn's messages again (and read state anew)."""
        for tp, offset in turn.first.items():
            if tp in self._held:
                del self._held[tp]
                consumer.resume([TopicPartition(*tp)])
            consumer.seek(TopicPartition(tp[0], tp[1], offset))

    # -- rebalance ---------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned = self.assigned | {(p.topic, p.partition) for p in partitions}
        if any((p.topic, p.partition) == self._state_tp for p in partitions):
            # The state is read from its beginning every time: it is one record per
            # schedule, compacted.
            self._owns_state, self._state_loaded = True, False
            self.state, self._next_tick = {}, {}
            consumer.assign([TopicPartition(p.topic, p.partition, OFFSET_BEGINNING)
                             if (p.topic, p.partition) == self._state_tp else p
                             for p in partitions])
        # librdkafka keeps a partition's pause flag across a rebalance: one paused
        # (held) before it would stay paused here with nothing left to resume it.
        consumer.resume(partitions)
        log.info("scheduler %s: assigned %d partition(s)", self.instance, len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        self.assigned = self.assigned - revoked
        for tp in revoked:
            self._held.pop(tp, None)
            self._committed.pop(tp, None)
        if self._state_tp in revoked:
            self._owns_state, self._state_loaded = False, False

    # -- the waiting gauge -------------------------------------------------------------

    def _waiting_loop(self) -> None:
        """Events waiting in the partitions this instance holds (so the sum over
        instances is the total), refreshed every few seconds off the loop. Counted by
        reading them (offsets alone would count transaction markers too), unless there
        are so many that their offset span is reported instead."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        admin = admin_client(self.kafka_config)
        counter = Consumer(with_logger({
            **self.kafka_config, "group.id": f"{self.topics.group}.census.{self.instance}",
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "enable.partition.eof": True}))
        try:
            while not self._stopping.wait(self.options.waiting_interval):
                owned = [TopicPartition(t, p) for t, p in sorted(self.assigned)
                         if t in self._waiting_topics]
                per_topic = dict.fromkeys(self.topics.waiting, 0)
                try:
                    if owned:
                        found = admin.list_consumer_group_offsets(
                            [ConsumerGroupTopicPartitions(self.topics.group, owned)])
                        committed = found[self.topics.group].result(timeout=10)
                        starts = {(tp.topic, tp.partition): max(tp.offset, 0)
                                  for tp in committed.topic_partitions}
                        for (topic, _), n in count_waiting(counter, starts).items():
                            per_topic[topic] += n
                    for topic, n in per_topic.items():
                        self.metrics.waiting.labels(topic).set(n)
                except Exception as exc:  # informational: never stop scheduling for it
                    log.debug("scheduler: waiting gauge not updated: %s", exc)
        finally:
            counter.close()


#: Above this many offsets to read, :func:`count_waiting` reports the offset span instead.
COUNT_LIMIT = 200_000


def count_waiting(consumer: Consumer, starts: Mapping[TP, int]) -> dict[TP, int]:
    """Messages from each partition's start offset to its end (read, so transaction
    markers do not count; estimated from offsets above :data:`COUNT_LIMIT`)."""
    ranges: dict[TP, tuple[int, int]] = {}
    for tp, start in starts.items():
        low, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=5)
        ranges[tp] = (max(start, low), high)
    counts = {tp: 0 for tp in ranges}
    open_ends = {tp for tp, (start, end) in ranges.items() if start < end}
    if sum(end - start for start, end in ranges.values()) > COUNT_LIMIT:
        return {tp: end - start for tp, (start, end) in ranges.items()}
    if not open_ends:
        return counts
    consumer.assign([TopicPartition(tp[0], tp[1], ranges[tp][0]) for tp in open_ends])
    deadline = time.monotonic() + 30
    try:
        while open_ends and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.2):
                tp = (message.topic() or "", message.partition() or 0)
                error = message.error()
                if error is None:
                    counts[tp] = counts.get(tp, 0) + 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    open_ends.discard(tp)
    finally:
        consumer.unassign()
    return counts

"""The consumer-group runtime behind ``tidings run SERVICE``.

One thread polls Kafka and owns the consumer; worker threads run handlers. Events flow
in batches: each fetch is split by key over the workers (so one key's events stay in
order while other keys run in parallel), each worker handles its part as one batch
(see :mod:`tidings.consumer.processing`), and reports back once per batch. Offsets
are committed, asynchronously and then synchronously on revoke and shutdown, only up to
where every event is finished (see :mod:`tidings.consumer.inflight`): after the
handler's effects, or the event's move to a retry tier or the DLQ, are durable. A
retry-tier partition whose head event is not yet due is paused and rewound to it, never
slept on, so every other partition keeps flowing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from tidings import headers as h
from tidings.consumer.group import GroupSetup
from tidings.consumer.idempotency import IdempotencyStore
from tidings.consumer.inflight import TP, InFlight
from tidings.consumer.metrics import ConsumerMetrics, HealthState, record_members, serve_metrics
from tidings.consumer.preflight import check_cluster
from tidings.consumer.processing import EventProcessor, Outcome
from tidings.consumer.retry import not_before
from tidings.consumer.start import pin_start_positions
from tidings.db import WalCheckpointer, redact_url, transaction
from tidings.kafka_clients import admin_client, latest_offset, with_logger
from tidings.producer.metrics import ProducerMetrics
from tidings.producer.outbox import OutboxRelay, ensure_outbox_table
from tidings.producer.reliable import ReliableProducer

log = logging.getLogger("tidings.consumer")

#: On shutdown, once the timeout has run out: how long the events already in a handler
#: still get to finish (a handler is never interrupted; the process just exits).
_HANDLER_GRACE = 5.0


@dataclass
class RuntimeOptions:
    concurrency: int | None = None  # default: the topology's `concurrency:`
    max_in_flight: int = 1000
    commit_interval: float = 1.0
    shutdown_timeout: float = 30.0
    metrics_port: int | None = None  # None: no HTTP endpoint; 0: any free port
    #: Events asked of Kafka per fetch, and so the largest batch one fetch makes.
    fetch_batch: int = 500
    session_timeout_ms: int = 10_000
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    #: A stable name for this instance (a pod name): the member joins with
    #: ``group.instance.id`` (static membership), so a restart gets its partitions back
    #: at once instead of after ``session_timeout_ms``. See the README for the trade-off.
    static_name: str | None = None
    #: Check the broker and the group's topics before joining (see consumer.preflight).
    preflight: bool = True


@dataclass(slots=True)
class _Done:
    """How far a worker got into its parts (or that it failed to route an event)."""

    parts: list[tuple[int, int]]  # (part id, events finished from its start)
    counts: dict[Outcome, int]
    error: BaseException | None = None


class ConsumerRuntime:
    """Runs one consumer group until :meth:`stop` (or SIGTERM via the CLI)."""

    #: What each worker handles its batches with (tidings.testing records outcomes).
    processor_class: type[EventProcessor] = EventProcessor

    def __init__(self, setup: GroupSetup, kafka_config: Mapping[str, Any],
                 options: RuntimeOptions | None = None) -> None:
        self.setup = setup
        self.options = options or RuntimeOptions()
        self.group = setup.group
        self.metrics = ConsumerMetrics(setup.group)
        self.health = HealthState()
        self.kafka_config = dict(kafka_config)
        self.producer = ReliableProducer(kafka_config)
        self._stopping = threading.Event()
        # Set when shutdown runs out of time: workers start no queued batch any more.
        self._draining = False
        self._active = 0  # batches inside a handler right now
        self._active_lock = threading.Lock()
        self._fatal: BaseException | None = None
        self._done: queue.Queue[_Done] = queue.Queue()
        self._ledger = InFlight()
        self._committed: dict[TP, int] = {}
        self._committed_view: dict[TP, int] = {}
        self._held: dict[TP, int] = {}  # retry partitions paused until this epoch ms
        self._backpressure = False
        self._full_since: float | None = None
        # Batch handlers: events gathered until ``batch.max_events`` or ``max_wait``.
        self._batch: list[Message] = []
        self._batch_entries: list[tuple[TP, int]] = []
        self._batch_since = 0.0
        concurrency = 1 if setup.is_batch else (self.options.concurrency or setup.spec.concurrency)
        self._queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(concurrency)]
        self._workers: list[threading.Thread] = []
        # A worker takes what queued up behind its batch along with it, up to this many
        # events: fewer, larger transactions when the handler is the bottleneck.
        self._merge_limit = 0 if setup.is_batch else 2 * self.options.fetch_batch
        self._retry_topics = frozenset(t for t in setup.source_topic if setup.is_retry_topic(t))
        self._relay: OutboxRelay | None = None
        self._checkpointer: WalCheckpointer | None = None
        self.metrics_server: Any = None
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        #: The partitions this member holds now (replaced, never mutated: safe to read).
        self.assigned: frozenset[TP] = frozenset()
        self.health.oldest_in_flight = self._ledger.oldest_opened
        self._in_flight_gauge = self.metrics.in_flight.labels(self.group)

    # -- lifecycle -----------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped; raises if a failed event could not be routed.

        Raises :class:`~tidings.errors.BrokerUnavailable` when no broker answers and
        :class:`~tidings.consumer.preflight.PreflightFailed` when the group's topics are
        missing, before anything else happens.
        """
        if self.options.preflight:
            check_cluster(self.setup, self.kafka_config)
        self._prepare_database()
        if self.options.metrics_port is not None:
            self.metrics_server = serve_metrics(self.metrics, self.health,
                                                self.options.metrics_port)
        if self.setup.preparer is not None:
            self._relay = OutboxRelay(self.setup.database, ReliableProducer(self.kafka_config),
                                      metrics=ProducerMetrics(self.group, self.metrics.registry))
            self._relay.start()
        if self.setup.database.dialect == "sqlite":
            self._checkpointer = WalCheckpointer(self.setup.database)
            self._checkpointer.start()
        for index, work in enumerate(self._queues):
            worker = threading.Thread(target=self._work, args=(work,),
                                      name=f"tidings-{self.group}-worker-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        config = {
            **self.kafka_config,
            "group.id": self.group,
            "client.id": f"{self.group}-{self.options.instance_id}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.options.session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.options.session_timeout_ms // 10),
            "on_commit": self._on_commit,
        }
        if self.options.static_name:
            config["group.instance.id"] = f"{self.group}-{self.options.static_name}"
        consumer = Consumer(with_logger(config))
        self._consumer = consumer
        consumer.subscribe(self.setup.topics, on_assign=self._on_assign,
                           on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.health.started = True
        threading.Thread(target=self._lag_loop, name=f"tidings-{self.group}-lag",
                         daemon=True).start()
        metrics = f"http://127.0.0.1:{self.metrics_port}/metrics" \
            if self.metrics_port is not None else "off"
        member = f"static member {config['group.instance.id']}" \
            if self.options.static_name else "dynamic member"
        log.info("%s: consuming %s from %s; database %s; metrics %s; %s; transaction per %s",
                 self.group, ", ".join(self.setup.topics),
                 self.kafka_config.get("bootstrap.servers"),
                 redact_url(self.setup.database.url), metrics, member,
                 "batch" if self.setup.is_batch else self.setup.spec.transaction)
        try:
            self._loop(consumer)
        finally:
            self._shutdown(consumer)
        if self._fatal is not None:
            raise self._fatal

    def stop(self) -> None:
        """Stop fetching, finish in-flight events, commit, leave the group (thread-safe).

        Fetched events still queued when ``shutdown_timeout`` runs out are not started:
        they stay uncommitted, and whoever owns their partition next handles them.
        """
        self._stopping.set()

    @property
    def metrics_port(self) -> int | None:
        return int(self.metrics_server.server_address[1]) if self.metrics_server else None

    def _prepare_database(self) -> None:
        database = self.setup.database
        connection = database.connect()
        try:
            IdempotencyStore(database, self.group).create(connection)
            if self.setup.preparer is not None:
                ensure_outbox_table(database, connection)
            if self.setup.setup_hook is not None:
                with transaction(connection):
                    self.setup.setup_hook(connection, database)
        finally:
            connection.close()

    # -- the poll loop ---------------------------------------------------------------

    def _loop(self, consumer: Consumer) -> None:
        last_commit = time.monotonic()
        while not self._stopping.is_set():
            self.health.polled()
            self._resume_due(consumer)
            if self._full():
                # Wait for capacity without fetching: librdkafka keeps what it prefetched
                # (a pause would drop it), and its own queue limit bounds the memory.
                self._drain_done(block=0.05)
            else:
                self._dispatch(consumer, self._fetch(consumer))
            self._flush_batch(force=False)
            self._drain_done()
            self._apply_backpressure(consumer)
            now = time.monotonic()
            if now - last_commit >= self.options.commit_interval:
                self._commit(consumer)
                last_commit = now

    def _dispatch(self, consumer: Consumer, messages: list[Message]) -> None:
        """Hand one fetch to the workers, a part per worker (batch handlers: gather it)."""
        if not messages:
            return
        held, retry_topics = self._held, self._retry_topics
        gather = self.setup.is_batch
        shards = len(self._queues)
        parts: list[list[Message]] = [[] for _ in range(shards)]
        entries: list[list[tuple[TP, int]]] = [[] for _ in range(shards)]
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_consume_error(error)
                continue
            topic = message.topic() or ""
            partition = message.partition() or 0
            tp = (topic, partition)
            if tp in held:
                continue  # fetched before the pause took effect; refetched on resume
            offset = message.offset() or 0
            if topic in retry_topics:
                due = not_before(h.HeaderView(message.headers()))
                if due is not None and due > time.time() * 1000:
                    self._hold(consumer, tp, offset, due)
                    continue
            if gather:
                if not self._batch:
                    self._batch_since = time.monotonic()
                self._batch.append(message)
                self._batch_entries.append((tp, offset))
                if len(self._batch) >= self._max_batch():
                    self._flush_batch(force=True)
                continue
            if shards == 1:
                shard = 0
            else:
                key = message.key()
                shard = (zlib.crc32(key) if key is not None else partition) % shards
            parts[shard].append(message)
            entries[shard].append((tp, offset))
        now = time.monotonic()
        for shard, part in enumerate(parts):
            if part:
                self._queues[shard].put((self._ledger.open(entries[shard], now), part))

    def _max_batch(self) -> int:
        spec = self.setup.spec.batch
        assert spec is not None
        return spec.max_events

    def _flush_batch(self, *, force: bool) -> None:
        if not self._batch:
            return
        spec = self.setup.spec.batch
        assert spec is not None
        full = len(self._batch) >= spec.max_events
        waited = time.monotonic() - self._batch_since >= spec.max_wait.seconds
        if force or full or waited:
            batch, self._batch = self._batch, []
            entries, self._batch_entries = self._batch_entries, []
            self._queues[0].put((self._ledger.open(entries, time.monotonic()), batch))

    def _hold(self, consumer: Consumer, tp: TP, offset: int, due_ms: int) -> None:
        # Pause and rewind to the head event: the partition costs nothing while it waits
        # and is fetched again from that event once it is due.
        partition = TopicPartition(tp[0], tp[1])
        consumer.pause([partition])
        consumer.seek(TopicPartition(tp[0], tp[1], offset))
        self._held[tp] = due_ms

    def _resume_due(self, consumer: Consumer) -> None:
        if not self._held:
            return
        now_ms = time.time() * 1000
        due = [tp for tp, at in self._held.items() if at <= now_ms]
        for tp in due:
            del self._held[tp]
        if due and not self._backpressure:
            consumer.resume([TopicPartition(t, p) for t, p in due])

    def _on_consume_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaException(error)
        log.warning("%s: consumer error: %s", self.group, error.str())

    # -- workers -------------------------------------------------------------------

    def _work(self, work: queue.Queue[Any]) -> None:
        processor = self.processor_class(self.setup, self.producer, self.metrics)
        stopping = self._draining_now
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                parts, messages = [item], item[1]
                last = False
                while len(messages) < self._merge_limit:
                    try:
                        queued = work.get_nowait()
                    except queue.Empty:
                        break
                    if queued is None:
                        last = True
                        break
                    parts.append(queued)
                    messages = [*messages, *queued[1]]
                with self._active_lock:
                    if self._draining:
                        if last:
                            return
                        continue  # not started: uncommitted, so it is redelivered
                    self._active += 1
                sizes = [(part_id, len(part)) for part_id, part in parts]

                def report(finished: int, counts: dict[Outcome, int],
                           sizes: list[tuple[int, int]] = sizes) -> None:
                    # ``finished`` counts from the start of the merged batch: each part
                    # gets its share.
                    progress, left = [], finished
                    for part_id, size in sizes:
                        progress.append((part_id, min(size, max(0, left))))
                        left -= size
                    self._done.put(_Done(progress, counts))

                try:
                    processor.handle(messages, report, stopping)
                except BaseException as exc:  # routing failed: stop without committing
                    self._done.put(_Done([], {}, exc))
                with self._active_lock:
                    self._active -= 1
                if last:
                    return
        finally:
            processor.close()

    def _draining_now(self) -> bool:
        return self._draining

    def _drain_done(self, block: float = 0.0) -> int:
        """Apply every finished report there is (waiting up to ``block`` for the first)."""
        try:
            done = self._done.get(timeout=block) if block else self._done.get_nowait()
        except queue.Empty:
            return 0
        drained = 0
        while True:
            drained += 1
            if done.error is not None:
                log.error("%s: could not route a failed event: %s", self.group, done.error)
                self._fatal = self._fatal or done.error
                self._stopping.set()
            else:
                for part_id, finished in done.parts:
                    self._ledger.progress(part_id, finished)
                for outcome, n in done.counts.items():
                    self.counts[outcome] += n
            try:
                done = self._done.get_nowait()
            except queue.Empty:
                return drained

    def _in_flight(self) -> int:
        return self._ledger.events + len(self._batch)

    def _fetch(self, consumer: Consumer) -> list[Message]:
        """What is there now, or the first event to arrive within 100 ms.

        ``consume(n, timeout)`` waits out its whole timeout unless ``n`` events come,
        which added up to 100 ms of latency to every quiet moment."""
        ready: list[Message] = consumer.consume(self.options.fetch_batch, timeout=0)
        if ready:
            return ready
        first = consumer.poll(0.1)
        if first is None:
            return []
        return [first, *consumer.consume(self.options.fetch_batch - 1, timeout=0)]

    def _full(self) -> bool:
        return self._in_flight() >= self.options.max_in_flight and not self._backpressure

    def _apply_backpressure(self, consumer: Consumer) -> None:
        in_flight = self._in_flight()
        self._in_flight_gauge.set(in_flight)
        limit = self.options.max_in_flight
        now = time.monotonic()
        if in_flight < limit:
            self._full_since = None
        elif self._full_since is None:
            self._full_since = now
        # Only a long stall pauses the partitions (and so keeps the consumer polling
        # within max.poll.interval.ms); a short one just skips fetching (see _loop).
        stalled = self._full_since is not None and now - self._full_since > 5.0
        if not self._backpressure and stalled:
            self._backpressure = True
            consumer.pause(consumer.assignment())
            log.info("%s: %d events in flight for 5s, pausing fetch", self.group, in_flight)
        elif self._backpressure and in_flight <= limit // 2:
            self._backpressure = False
            consumer.resume([tp for tp in consumer.assignment()
                             if (tp.topic, tp.partition) not in self._held])

    # -- offsets -------------------------------------------------------------------

    def _commit(self, consumer: Consumer, only: set[TP] | None = None, *,
                wait: bool = False) -> None:
        """Commit what is safe; in the background unless ``wait`` (revoke, shutdown)."""
        offsets = [TopicPartition(tp[0], tp[1], position)
                   for tp, position in self._ledger.committable().items()
                   if (only is None or tp in only) and self._committed.get(tp) != position]
        if not offsets:
            return
        try:
            if wait:
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.warning("%s: commit failed (%s); it is retried", self.group, exc.args[0])
            return
        for partition in offsets:
            self._committed[(partition.topic, partition.partition)] = partition.offset
        self._committed_view = dict(self._committed)  # a snapshot the lag thread may read

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """A background commit's result (served inside poll): failed ones are retried."""
        failed = [p for p in partitions if error is not None or p.error is not None]
        if not failed:
            return
        for partition in failed:
            tp = (partition.topic, partition.partition)
            if self._committed.get(tp) == partition.offset:
                del self._committed[tp]
        reason = error.str() if error is not None else failed[0].error
        log.warning("%s: commit of %d partition(s) failed (%s); it is retried", self.group,
                    len(failed), reason)

    def _lag_loop(self) -> None:
        """Lag per partition, off the poll thread: one ListOffsets request for all of them
        every few seconds (asking partition by partition stalled the loop for seconds)."""
        admin = admin_client(self.kafka_config)
        while not self._stopping.wait(5):
            record_members(self.metrics, admin)  # tidings_group_members, for alerting
            committed = dict(self._committed_view)
            if not committed:
                continue
            try:
                futures = admin.list_offsets(
                    {TopicPartition(t, p): latest_offset() for t, p in committed},
                    request_timeout=5)
                for partition, future in futures.items():
                    high = future.result(timeout=10).offset
                    tp = (partition.topic, partition.partition)
                    if tp in committed and tp in self.assigned:  # not revoked meanwhile
                        self.metrics.lag.labels(self.group, tp[0], str(tp[1])).set(
                            max(0, high - committed[tp]))
            except Exception as exc:  # lag is informational: never let it stop consuming
                log.debug("%s: lag not updated: %s", self.group, exc)

    # -- rebalance -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        main_topics = frozenset(t for t, source in self.setup.source_topic.items()
                                if t == source)
        pinned = pin_start_positions(consumer, self.group, self.setup.spec.start_from,
                                     partitions, main_topics)
        if pinned is not partitions:
            consumer.assign(pinned)
        self.assigned = self.assigned | {(p.topic, p.partition) for p in partitions}
        log.info("%s: assigned %d partition(s)", self.group, len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        self._flush_batch(force=True)
        self._wait_for(lambda: not self._ledger.touches(revoked))
        self._commit(consumer, only=revoked, wait=True)
        # librdkafka keeps a partition's pause across revoke and re-assignment: one
        # paused now (backpressure, a retry hold) would never be fetched again here.
        consumer.resume(partitions)
        self._forget(revoked)
        log.info("%s: revoked %d partition(s), offsets committed", self.group, len(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.resume(partitions)  # as in _on_revoke
        self._forget({(p.topic, p.partition) for p in partitions})

    def _forget(self, partitions: set[TP]) -> None:
        self.assigned = self.assigned - partitions
        self._committed_view = {}  # replaced, never mutated: the lag thread copies it
        self._ledger.forget(partitions)
        for tp in partitions:
            self._committed.pop(tp, None)
            self._held.pop(tp, None)
            # A former owner must not keep reporting its last lag for the partition.
            self.metrics.lag.remove(self.group, tp[0], str(tp[1]))

    def _wait_for(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                log.warning("%s: in-flight events did not finish in %.0fs", self.group,
                            timeout)
                return False
            self._drain_done(block=0.1)
        return True

    def _shutdown(self, consumer: Consumer) -> None:
        try:
            assignment = consumer.assignment()
            if assignment:
                consumer.pause(assignment)
            self._flush_batch(force=True)
            if not self._wait_for(lambda: self._ledger.events == 0 or self._fatal is not None):
                # Out of time (up to max_in_flight events may be queued): start no more,
                # and let the ones in a handler finish, so that nothing runs after the
                # commit below (it would be redone by the partition's next owner).
                with self._active_lock:
                    self._draining = True
                self._wait_for(lambda: self._active == 0, timeout=_HANDLER_GRACE)
            self._drain_done()
            if self._fatal is None:
                self._commit(consumer, wait=True)
            # Anything left was never started; close() must not wait for it on revoke.
            self._ledger.clear()
            self._forget(set(self.assigned))
        finally:
            consumer.close()  # leaves the group, so the partitions move on at once
            for work in self._queues:
                work.put(None)
            for worker in self._workers:
                worker.join(timeout=5)
            if self._relay is not None:
                self._relay.stop()
            if self._checkpointer is not None:
                self._checkpointer.stop()
            self.producer.close()
            if self.metrics_server is not None:
                self.metrics_server.shutdown()
            log.info("%s: stopped", self.group)

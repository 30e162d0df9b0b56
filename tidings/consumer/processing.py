"""Batches of events through decode, dedup, handler and failure routing.

Runs on worker threads; it never touches the Kafka consumer, only the group's
database connection it owns and the (thread-safe) producer for retries and the DLQ.

A batch is what the poll loop handed this worker at once. Its events are decoded and
validated, then handled according to the group's ``transaction:`` mode:

* ``batch`` (the default): all of the batch's idempotency keys are claimed in one
  statement and every handler runs inside one transaction, which commits once. If a
  handler raises, the transaction is rolled back and the batch is run again around
  the failing event: the events before it together, the failing one alone (so only it
  moves to a retry tier or the DLQ, and its claim is never committed), then the rest.
  Handlers' effects in ``ctx.db`` are rolled back with the transaction, so running a
  neighbour twice changes nothing; effects outside the database are not, which is why
  such handlers declare ``transaction: event``.
* ``event``: one transaction per event, as a handler that sends mail or calls a
  webhook needs: a crash redoes at most the one event that was in its handler.

Groups with ``batch:`` get whole batches in one call, in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import Message
from pydantic import ValidationError

from tidings import headers as h
from tidings import tracing
from tidings.codec import DecodeError
from tidings.codec.events import Event
from tidings.consumer.context import (
    BatchContext,
    Delivered,
    EventMeta,
    HandlerContext,
    NonRetryableError,
)
from tidings.consumer.group import GroupSetup
from tidings.consumer.idempotency import LIVE, ClaimKey, IdempotencyStore
from tidings.consumer.metrics import CONSUMED, DUPLICATES, IGNORED, PROCESSED, ConsumerMetrics
from tidings.consumer.retry import RouteKind, attempt_of, error_class, failure_headers
from tidings.db import transaction
from tidings.producer.outbox import Outbox, stage_with
from tidings.producer.prepare import PublishRefused
from tidings.producer.reliable import Delivery, ReliableProducer

log = logging.getLogger("tidings.consumer")

#: The logger a HandlerContext gets, looked up once.
_HANDLER_LOG = logging.getLogger("tidings.handler")

#: Set on the copies of a ``--reprocess`` replay, to that replay's id: the handler runs
#: again for events already applied, once per replay (see tidings.consumer.idempotency).
REPROCESS_HEADER = "tidings-reprocess"
#: Every replay copy names its replay (tidings.replay.copier.REPLAY_ID).
_REPLAY_ID_HEADER = "replay-id"


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    RETRIED = "retried"
    DEAD_LETTERED = "dead-lettered"
    DROPPED = "dropped"


class UndecodableEvent(NonRetryableError):
    """The payload is not a valid event of any known schema (poison)."""


class InvalidEvent(NonRetryableError):
    """The payload decodes but does not satisfy the event's model."""


@dataclass(slots=True)
class Parsed:
    """A decoded, validated event of a batch, with the key it claims."""

    message: Message
    meta: EventMeta
    event: Any
    key: ClaimKey
    index: int  # its place in the batch handed to the worker


#: How a worker hears of progress within a batch: (events finished from the batch's
#: start, outcomes since the last report).
Report = Callable[[int, dict["Outcome", int]], None]

#: A transaction that has run this long commits what it holds and a new one goes on
#: with the rest: commits, offsets and shutdown never wait on a whole batch of slow
#: handlers.
MAX_TRANSACTION_SECONDS = 0.25
#: Progress within a batch is reported at most this often (and at its end).
REPORT_INTERVAL = 0.05


class EventProcessor:
    """Handles batches for one worker, with that worker's own database connection."""

    def __init__(self, setup: GroupSetup, producer: ReliableProducer,
                 metrics: ConsumerMetrics) -> None:
        self.setup = setup
        self.producer = producer
        self.metrics = metrics
        self.stats = metrics.worker_stats()
        self.connection = setup.database.connect()
        if setup.database.dialect == "sqlite":
            # The runtime checkpoints the WAL in the background (db.WalCheckpointer), so
            # no handler's COMMIT pays for a checkpoint.
            self.connection.execute("PRAGMA wal_autocheckpoint=0")
        self.store = IdempotencyStore(setup.database, setup.group)
        self.outbox = Outbox(setup.database, setup.preparer) if setup.preparer else None
        self.per_event = setup.spec.transaction == "event"
        # Resolved once: they are read for every event.
        self._subscriptions = setup.subscriptions
        # In a ``<group> process`` span per call when tracing is on (else as it is).
        self._handler = tracing.traced_handler(setup.handler, setup.group, batch=setup.is_batch)
        self._group = setup.group
        self._database = setup.database
        self._decode = setup.codec.decode
        self._readers = setup.readers
        self._models = setup.models
        # How a decoded record becomes the handler's event, per event type: the model's
        # pydantic validator itself unless the model overrides Event.from_avro.
        self._to_event: dict[str, Callable[[Any], Any]] = {
            event_type: _event_maker(model) for event_type, model in setup.models.items()}
        self._routing: list[tuple[Future[Delivery], EventMeta]] = []
        self.max_transaction_seconds = MAX_TRANSACTION_SECONDS
        # Per batch: outcomes not reported yet, and where reports go.
        self._counts: dict[Outcome, int] = {}
        self._report: Report | None = None
        self._reported_at = 0.0

    def close(self) -> None:
        self.connection.close()

    # -- a batch ---------------------------------------------------------------------

    def handle(self, messages: Sequence[Message], report: Report | None = None,
               stop: Callable[[], bool] | None = None) -> dict[Outcome, int]:
        """Take the messages of a batch to their end (applied, skipped, retried or
        dead-lettered), in order, and return how many ended which way.

        ``report(done, outcomes)`` hears now and then that the first ``done`` messages
        are finished (their effects committed, their retry or DLQ copies acknowledged),
        always at the end. ``stop()`` true makes it start no further transaction: the
        rest stays unfinished, for whoever owns the partitions next. Raises when a failed
        event could not be routed: what was not reported finished is then not finished.
        """
        total: dict[Outcome, int] = {}
        self._counts = {}
        self._report = report
        self._reported_at = time.monotonic()
        items = self._parse_all(messages)
        finished = len(messages)
        if items:
            if self.setup.is_batch:
                self._batch_handler(items)
            else:
                position = self._per_event(items, stop) if self.per_event \
                    else self._together(items, stop)
                if position < len(items):
                    finished = items[position].index
        self._progress(finished, force=True, into=total)
        return total

    def _progress(self, finished: int, *, force: bool = False,
                  into: dict[Outcome, int] | None = None) -> None:
        """Tell the worker how far the batch is (at most every REPORT_INTERVAL)."""
        now = time.monotonic()
        if not force and now - self._reported_at < REPORT_INTERVAL:
            return
        self._await_routing()  # a routed event is finished once Kafka has its copy
        counts, self._counts = self._counts, {}
        self._reported_at = now
        if into is not None:
            for outcome, n in counts.items():
                into[outcome] = into.get(outcome, 0) + n
        if self._report is not None:
            self._report(finished, counts)

    def _parse_all(self, messages: Sequence[Message]) -> list[Parsed]:
        items: list[Parsed] = []
        consumed: dict[str, int] = {}
        for index, message in enumerate(messages):
            parsed = self._parse(message, index)
            if parsed is not None:
                items.append(parsed)
                event_type = parsed.meta.event_type
                consumed[event_type] = consumed.get(event_type, 0) + 1
        for event_type, n in consumed.items():
            self.stats.add(CONSUMED, event_type, n)
        return items

    def _parse(self, message: Message, index: int) -> Parsed | None:
        """Decode and validate one message; poison is routed here and None returned."""
        raw = message.headers()
        pairs = raw.items() if isinstance(raw, dict) else raw or ()
        # One pass over the raw headers for the three the runtime needs per event.
        event_id: str | bytes | None = None
        attempt = mark = None
        for name, value in pairs:
            if name == h.EVENT_ID:
                event_id = value
            elif name == h.ATTEMPT:
                attempt = value
            elif name == REPROCESS_HEADER:
                mark = value
        headers = h.HeaderView(pairs)
        topic, partition, offset = message.topic() or "", message.partition() or 0, \
            message.offset() or 0
        event_id_text = event_id.decode("utf-8", "replace") if isinstance(event_id, bytes) \
            else event_id or f"{topic}:{partition}:{offset}"
        attempt_number = 1 if attempt is None else attempt_of(headers)
        reprocess = None if mark is None else reprocess_id(headers)
        payload = message.value() or b""
        try:
            decoded = self._decode(payload)
        except DecodeError as error:
            meta = EventMeta(event_id_text, headers.get(h.EVENT_TYPE) or "unknown", topic,
                             partition, offset, message.key(), headers, attempt_number,
                             reprocess)
            self.stats.add(CONSUMED, meta.event_type)
            self._count(self.fail(
                message, meta, UndecodableEvent(f"{type(error).__name__}: {error}")))
            return None
        event_type = decoded.event
        if event_type not in self._subscriptions:
            self.stats.add(IGNORED, event_type)
            self._count(Outcome.IGNORED)
            return None
        meta = EventMeta(event_id_text, event_type, topic, partition, offset, message.key(),
                         headers, attempt_number, reprocess)
        reader = self._readers[event_type]
        record = decoded.record
        if reader.version != decoded.writer_version:
            record = self._decode(payload, reader).record
        try:
            event = self._to_event[event_type](record)
        except ValidationError as error:
            self.stats.add(CONSUMED, event_type)
            self._count(self.fail(message, meta, InvalidEvent(str(error).splitlines()[0])))
            return None
        return Parsed(message, meta, event, (reprocess or LIVE, event_id_text), index)

    # -- one transaction for many events ------------------------------------------------

    def _together(self, items: list[Parsed], stop: Callable[[], bool] | None) -> int:
        """Run ``items`` in as few transactions as their failures allow (see module);
        returns how many of them finished (all, unless ``stop`` said so)."""
        position = 0
        # Events that must run alone, the next one last: a failure inside a run ends the
        # run before it; the events before it run together again, then it alone.
        alone: list[int] = []
        # After a transaction was cut for time, the next ones claim about twice what it
        # got through, not all the rest again (whose claims a cut must give back).
        window = len(items)
        while position < len(items):
            if stop is not None and stop():
                return position
            if alone and alone[-1] == position:
                alone.pop()
                self._alone(items[position])
                position += 1
            else:
                bound = min(alone[-1] if alone else len(items), position + window)
                outcome = self._run(items, position, bound)
                if isinstance(outcome, int):
                    if outcome < bound:  # cut for time
                        window = max(1, 2 * (outcome - position))
                    position = outcome
                else:
                    failed_at, error = outcome
                    if failed_at is None:  # the COMMIT failed: find the culprit alone
                        for index in range(position, bound):
                            self._alone(items[index])
                        position = bound
                    elif failed_at == position:  # it failed with nothing before it
                        self._count(self.fail(items[position].message, items[position].meta,
                                              error))
                        position += 1
                    else:
                        alone.append(failed_at)
                        continue
            self._progress(items[position].index if position < len(items)
                           else items[-1].index + 1)
        return position

    def _per_event(self, items: list[Parsed], stop: Callable[[], bool] | None) -> int:
        for position, item in enumerate(items):
            if stop is not None and stop():
                return position
            self._alone(item)
            self._progress(item.index + 1)
        return len(items)

    def _alone(self, item: Parsed) -> None:
        """One event in its own transaction; a failure routes it."""
        outcome = self._run([item], 0, 1)
        if not isinstance(outcome, int):
            self._count(self.fail(item.message, item.meta, outcome[1]))

    def _run(self, items: list[Parsed], start: int, bound: int
             ) -> int | tuple[int | None, BaseException]:
        """Claim and handle ``items[start:bound]`` in one transaction. Returns where the
        next transaction starts once this one committed (``bound``, or earlier when it
        ran for MAX_TRANSACTION_SECONDS); else ``(index of the failing event, error)``
        after rolling everything back (``index`` None: the COMMIT itself failed)."""
        connection, handler, stage = self.connection, self._handler, self._stage
        group, database = self._group, self._database
        began = time.perf_counter()
        cut_after = began + self.max_transaction_seconds
        applied: list[Parsed] = []
        skipped: list[Parsed] = []
        end = bound
        try:
            with transaction(connection):
                fresh = self.store.claim_new(connection,
                                             [items[i].key for i in range(start, bound)])
                for index in range(start, bound):
                    item = items[index]
                    key = item.key
                    if key not in fresh:
                        skipped.append(item)
                        continue
                    fresh.discard(key)  # a second copy in this batch is a duplicate
                    try:
                        handler(item.event, HandlerContext(group, item.meta, connection,
                                                           database, stage, _HANDLER_LOG))
                    except Exception as error:  # user code: any error fails the event
                        raise _HandlerFailed(index, error) from error
                    applied.append(item)
                    if index + 1 < bound and time.perf_counter() > cut_after:
                        # Long enough: commit what ran; the claims of the rest go.
                        end = index + 1
                        self.store.release(connection, fresh)
                        break
        except _HandlerFailed as failure:
            return failure.index, failure.error
        except Exception as error:  # raised by COMMIT (or the claim): nothing applied
            return (start if bound - start == 1 else None), error
        self._record(applied, skipped, time.perf_counter() - began)
        return end

    def _record(self, applied: list[Parsed], skipped: list[Parsed], elapsed: float) -> None:
        stats, counts = self.stats, self._counts
        by_type: dict[str, int] = {}
        for item in applied:
            event_type = item.meta.event_type
            by_type[event_type] = by_type.get(event_type, 0) + 1
        if applied:
            # In one transaction the batch's time is spread evenly over its events.
            share = elapsed / len(applied)
            for event_type, n in by_type.items():
                stats.add(PROCESSED, event_type, n)
                stats.observe(event_type, share, n)
            counts[Outcome.PROCESSED] = counts.get(Outcome.PROCESSED, 0) + len(applied)
        for item in skipped:
            stats.add(DUPLICATES, item.meta.event_type)
        if skipped:
            counts[Outcome.DUPLICATE] = counts.get(Outcome.DUPLICATE, 0) + len(skipped)

    # -- batch handlers ----------------------------------------------------------------

    def _batch_handler(self, items: list[Parsed]) -> None:
        """One call and one transaction for the batch; if it fails, each event is run as
        a batch of its own so only the failing ones move to a retry tier or the DLQ."""
        failed = self._run_batch(items)
        if failed is None:
            return
        fresh, error = failed
        # Copies skipped as duplicates in the rolled-back attempt are not run again:
        # count them here, or the batch reports fewer events than it had.
        again = {id(item) for item in fresh}
        self._record([], [item for item in items if id(item) not in again], 0.0)
        if len(fresh) == 1:
            self._count(self.fail(fresh[0].message, fresh[0].meta, error))
            return
        log.warning("%s: batch of %d failed (%s); handling its events one by one",
                    self._group, len(fresh), error)
        for item in fresh:
            alone = self._run_batch([item])
            if alone is not None:
                self._count(self.fail(item.message, item.meta, alone[1]))

    def _run_batch(self, items: list[Parsed]) -> tuple[list[Parsed], BaseException] | None:
        connection = self.connection
        began = time.perf_counter()
        chosen: list[Parsed] = []
        skipped: list[Parsed] = []
        try:
            with transaction(connection):
                fresh = self.store.claim_new(connection, [item.key for item in items])
                for item in items:
                    if item.key in fresh:
                        fresh.discard(item.key)
                        chosen.append(item)
                    else:
                        skipped.append(item)
                if chosen:
                    self._handler([item.event for item in chosen], BatchContext(
                        self._group, connection, self._database,
                        [Delivered(item.event, item.meta) for item in chosen], self._stage,
                        _HANDLER_LOG))
        except Exception as error:  # user code, or the COMMIT: the batch failed
            return chosen or items, error
        self._record(chosen, skipped, time.perf_counter() - began)
        return None

    # -- follow-up events ----------------------------------------------------------------

    def _stage(self, event: Any, **options: Any) -> str:
        if self.outbox is None:
            raise PublishRefused(
                f"group {self._group!r} publishes follow-up events but is not declared "
                f"under producers in {self.setup.topology.path.name}"
            )
        if options:  # delay=, deliver_at=, schedule_id=, reply_to=, cancel= (see context)
            return stage_with(self.outbox, self.connection, event, options)
        return self.outbox.stage(self.connection, event)

    # -- failures ----------------------------------------------------------------------

    def fail(self, message: Message, meta: EventMeta, error: BaseException) -> Outcome:
        """Send a failed event to its next tier or the DLQ. The batch waits for Kafka's
        acknowledgement before it counts as done (see :meth:`handle`)."""
        retryable = not isinstance(error, NonRetryableError)
        source = self.setup.source_topic.get(meta.topic, meta.topic)
        route = self.setup.policy.route(source, meta.attempt, retryable=retryable)
        group, event_type = self._group, meta.event_type
        if route.kind is RouteKind.DROP or route.topic is None:
            log.error("%s: dropping %s %s after attempt %d (no DLQ declared): %s",
                      group, event_type, meta.event_id, meta.attempt, error)
            self.metrics.dead_lettered.labels(group, event_type, error_class(error)).inc()
            return Outcome.DROPPED
        headers = failure_headers(meta.headers, route=route, topic=meta.topic,
                                  partition=meta.partition, offset=meta.offset, error=error)
        # Same key, so the copy lands on the same partition number as the original.
        self._routing.append((self.producer.send(
            route.topic, message.value() or b"", key=message.key(), headers=headers,
            event_id=meta.event_id), meta))
        if route.kind is RouteKind.RETRY:
            log.warning("%s: %s %s failed (attempt %d), retry in %s: %s", group, event_type,
                        meta.event_id, meta.attempt, route.tier, error)
            self.metrics.retried.labels(group, event_type, route.tier or "").inc()
            return Outcome.RETRIED
        log.error("%s: %s %s dead-lettered to %s after attempt %d: %s", group, event_type,
                  meta.event_id, route.topic, meta.attempt, error)
        self.metrics.dead_lettered.labels(group, event_type, error_class(error)).inc()
        return Outcome.DEAD_LETTERED

    def _await_routing(self) -> None:
        routing, self._routing = self._routing, []
        for future, _ in routing:
            future.result()  # DeliveryFailed: the runtime stops without committing

    def _count(self, outcome: Outcome) -> None:
        self._counts[outcome] = self._counts.get(outcome, 0) + 1


class _HandlerFailed(Exception):
    """Carries a handler's error out of the transaction (which rolls back)."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


_EVENT_FROM_AVRO = Event.__dict__["from_avro"].__func__


def _event_maker(model: Any) -> Callable[[Any], Any]:
    """The function from a decoded record to the event a handler gets."""
    if model is None:
        return _as_record
    if getattr(model.from_avro, "__func__", None) is _EVENT_FROM_AVRO:
        # Event.from_avro is model_validate: go to its validator without the wrappers.
        validate = model.__pydantic_validator__.validate_python
        return validate  # type: ignore[no-any-return]
    return model.from_avro  # type: ignore[no-any-return]


def _as_record(record: Any) -> Any:
    return record


def reprocess_id(headers: Mapping[str, str]) -> str | None:
    """The reprocess replay a delivery belongs to, from its headers; None when live."""
    mark = headers.get(REPROCESS_HEADER)
    if not mark:
        return None
    # Copies made before the mark carried the replay id said "1"; their replay-id names it.
    return mark if mark != "1" else headers.get(_REPLAY_ID_HEADER) or mark

"""One event (or one batch) through decode, dedup, handler and failure routing.

Runs on worker threads; it never touches the Kafka consumer, only the group's
database connection it owns and the (thread-safe) producer for retries/DLQ.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from confluent_kafka import Message
from pydantic import ValidationError

from tidings import headers as h
from tidings.codec import DecodeError
from tidings.consumer.context import (
    BatchContext,
    Delivered,
    EventMeta,
    HandlerContext,
    NonRetryableError,
)
from tidings.consumer.group import GroupSetup
from tidings.consumer.idempotency import LIVE, IdempotencyStore
from tidings.consumer.metrics import ConsumerMetrics
from tidings.consumer.retry import RouteKind, attempt_of, error_class, failure_headers
from tidings.db import transaction
from tidings.producer.outbox import Outbox
from tidings.producer.prepare import PublishRefused
from tidings.producer.reliable import ReliableProducer

log = logging.getLogger("tidings.consumer")

#: The logger a HandlerContext gets by default, looked up once.
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


class _AlreadyApplied(Exception):
    """Raised inside the transaction to roll back the claim of a duplicate."""


class UndecodableEvent(NonRetryableError):
    """The payload is not a valid event of any known schema (poison)."""


class InvalidEvent(NonRetryableError):
    """The payload decodes but does not satisfy the event's model."""


@dataclass(frozen=True)
class Parsed:
    message: Message
    meta: EventMeta
    event: Any


class EventProcessor:
    """Handles events for one worker, with that worker's own database connection."""

    def __init__(self, setup: GroupSetup, producer: ReliableProducer,
                 metrics: ConsumerMetrics) -> None:
        self.setup = setup
        self.producer = producer
        self.metrics = metrics
        self.connection = setup.database.connect()
        self.store = IdempotencyStore(setup.database, setup.group)
        self.outbox = Outbox(setup.database, setup.preparer) if setup.preparer else None
        # Resolved once: the subscriptions (a property that builds a set) and the metric
        # children per event type (``labels()`` costs a lock and a lookup per call).
        self._subscriptions = setup.subscriptions
        self._children: dict[tuple[int, str], Any] = {}

    def _child(self, metric: Any, event_type: str) -> Any:
        """``metric.labels(group, event_type)``, looked up once (created on first use,
        as before, so a series still appears only once it has something to count)."""
        key = (id(metric), event_type)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.setup.group, event_type)
        return child

    def close(self) -> None:
        self.connection.close()

    # -- one event ---------------------------------------------------------------------

    def process(self, message: Message) -> Outcome:
        parsed = self.parse(message)
        if isinstance(parsed, Outcome):
            return parsed
        meta = parsed.meta
        metrics = self.metrics
        self._child(metrics.consumed, meta.event_type).inc()
        began = time.perf_counter()
        try:
            with transaction(self.connection):
                if not self.store.claim(self.connection, meta.event_id, _scope(meta)):
                    raise _AlreadyApplied
                self.setup.handler(parsed.event, HandlerContext(
                    group=self.setup.group, meta=meta, db=self.connection,
                    database=self.setup.database, stage=self._stage, log=_HANDLER_LOG))
        except _AlreadyApplied:
            self._child(metrics.duplicates, meta.event_type).inc()
            return Outcome.DUPLICATE
        except Exception as error:  # the handler is user code: any error is a failure
            return self.fail(message, meta, error)
        finally:
            self._child(metrics.handler_seconds, meta.event_type).observe(
                time.perf_counter() - began)
        self._child(metrics.processed, meta.event_type).inc()
        return Outcome.PROCESSED

    def parse(self, message: Message) -> Parsed | Outcome:
        """Decode and validate; poison goes to the DLQ here and an Outcome is returned."""
        # h.header_dict, inlined: headers as text, the last value winning for a name.
        raw = message.headers()
        pairs = raw.items() if isinstance(raw, dict) else raw or ()
        headers = {name: value.decode("utf-8", "replace") if isinstance(value, bytes)
                   else value or "" for name, value in pairs}
        topic, partition, offset = (str(message.topic()), message.partition() or 0,
                                    message.offset() or 0)
        event_id = headers.get(h.EVENT_ID) or f"{topic}:{partition}:{offset}"
        payload = message.value() or b""
        try:
            decoded = self.setup.codec.decode(payload)
        except DecodeError as error:
            meta = EventMeta(event_id=event_id, event_type=headers.get(h.EVENT_TYPE, "unknown"),
                             topic=topic, partition=partition, offset=offset,
                             key=message.key(), headers=headers, attempt=attempt_of(headers),
                             reprocess_id=reprocess_id(headers))
            self.metrics.consumed.labels(self.setup.group, meta.event_type).inc()
            return self.fail(message, meta, UndecodableEvent(f"{type(error).__name__}: {error}"))
        event_type = decoded.event
        meta = EventMeta(event_id=event_id, event_type=event_type, topic=topic,
                         partition=partition, offset=offset, key=message.key(),
                         headers=headers, attempt=attempt_of(headers),
                         reprocess_id=reprocess_id(headers))
        if event_type not in self._subscriptions:
            self.metrics.ignored.labels(self.setup.group, event_type).inc()
            return Outcome.IGNORED
        reader = self.setup.readers[event_type]
        record = decoded.record
        if reader.version != decoded.writer_version:
            record = self.setup.codec.decode(payload, reader=reader).record
        model = self.setup.models.get(event_type)
        try:
            event = model.from_avro(record) if model is not None else record
        except ValidationError as error:
            self._child(self.metrics.consumed, event_type).inc()
            return self.fail(message, meta, InvalidEvent(str(error).splitlines()[0]))
        return Parsed(message, meta, event)

    def _stage(self, event: Any) -> str:
        if self.outbox is None:
            raise PublishRefused(
                f"group {self.setup.group!r} publishes follow-up events but is not declared "
                f"under producers in {self.setup.topology.path.name}"
            )
        return self.outbox.stage(self.connection, event)

    # -- failures ----------------------------------------------------------------------

    def fail(self, message: Message, meta: EventMeta, error: BaseException) -> Outcome:
        """Send a failed event to its next tier or the DLQ, and wait until Kafka has it."""
        retryable = not isinstance(error, NonRetryableError)
        source = self.setup.source_topic.get(meta.topic, meta.topic)
        route = self.setup.policy.route(source, meta.attempt, retryable=retryable)
        group, event_type = self.setup.group, meta.event_type
        if route.kind is RouteKind.DROP or route.topic is None:
            log.error("%s: dropping %s %s after attempt %d (no DLQ declared): %s",
                      group, event_type, meta.event_id, meta.attempt, error)
            self.metrics.dead_lettered.labels(group, event_type, error_class(error)).inc()
            return Outcome.DROPPED
        headers = failure_headers(meta.headers, route=route, topic=meta.topic,
                                  partition=meta.partition, offset=meta.offset, error=error)
        # Same key, so the copy lands on the same partition number as the original.
        self.producer.send(route.topic, message.value() or b"", key=message.key(),
                           headers=headers, event_id=meta.event_id).result()
        if route.kind is RouteKind.RETRY:
            log.warning("%s: %s %s failed (attempt %d), retry in %s: %s", group, event_type,
                        meta.event_id, meta.attempt, route.tier, error)
            self.metrics.retried.labels(group, event_type, route.tier or "").inc()
            return Outcome.RETRIED
        log.error("%s: %s %s dead-lettered to %s after attempt %d: %s", group, event_type,
                  meta.event_id, route.topic, meta.attempt, error)
        self.metrics.dead_lettered.labels(group, event_type, error_class(error)).inc()
        return Outcome.DEAD_LETTERED

    # -- batches -----------------------------------------------------------------------

    def process_batch(self, messages: Sequence[Message]) -> list[Outcome]:
        """One transaction for the batch; if it fails, each event is retried on its own so
        only the failing ones move to a retry tier or the DLQ."""
        outcomes: list[Outcome | None] = [None] * len(messages)
        ready: list[tuple[int, Parsed]] = []
        for index, message in enumerate(messages):
            parsed = self.parse(message)
            if isinstance(parsed, Outcome):
                outcomes[index] = parsed
            else:
                self.metrics.consumed.labels(self.setup.group, parsed.meta.event_type).inc()
                ready.append((index, parsed))
        fresh: list[tuple[int, Parsed]] = []
        if ready:
            by_scope: dict[str, list[str]] = {}
            for _, parsed in ready:
                by_scope.setdefault(_scope(parsed.meta), []).append(parsed.meta.event_id)
            seen = {(scope, event_id) for scope, ids in by_scope.items()
                    for event_id in self.store.seen(self.connection, ids, scope)}
            claimed: set[tuple[str, str]] = set()
            for index, parsed in ready:
                key = (_scope(parsed.meta), parsed.meta.event_id)
                if key in seen or key in claimed:
                    outcomes[index] = Outcome.DUPLICATE
                    self.metrics.duplicates.labels(self.setup.group,
                                                   parsed.meta.event_type).inc()
                else:
                    claimed.add(key)
                    fresh.append((index, parsed))
        if fresh:
            try:
                self._run_batch([p for _, p in fresh])
                for index, parsed in fresh:
                    outcomes[index] = Outcome.PROCESSED
                    self.metrics.processed.labels(self.setup.group,
                                                  parsed.meta.event_type).inc()
            except Exception as error:
                if len(fresh) == 1:
                    index, parsed = fresh[0]
                    outcomes[index] = self.fail(parsed.message, parsed.meta, error)
                else:
                    log.warning("%s: batch of %d failed (%s); handling its events one by one",
                                self.setup.group, len(fresh), error)
                    for index, parsed in fresh:
                        outcomes[index] = self._single_batch(parsed)
        return [o if o is not None else Outcome.IGNORED for o in outcomes]

    def _single_batch(self, parsed: Parsed) -> Outcome:
        try:
            self._run_batch([parsed])
        except Exception as error:
            return self.fail(parsed.message, parsed.meta, error)
        self.metrics.processed.labels(self.setup.group, parsed.meta.event_type).inc()
        return Outcome.PROCESSED

    def _run_batch(self, batch: list[Parsed]) -> None:
        began = time.perf_counter()
        try:
            with transaction(self.connection):
                by_scope: dict[str, list[str]] = {}
                for parsed in batch:
                    by_scope.setdefault(_scope(parsed.meta), []).append(parsed.meta.event_id)
                for scope, ids in by_scope.items():
                    self.store.claim_many(self.connection, ids, scope)
                self.setup.handler([p.event for p in batch], BatchContext(
                    group=self.setup.group, db=self.connection, database=self.setup.database,
                    items=[Delivered(p.event, p.meta) for p in batch], stage=self._stage))
        finally:
            elapsed = time.perf_counter() - began
            for parsed in batch:
                self.metrics.handler_seconds.labels(
                    self.setup.group, parsed.meta.event_type).observe(elapsed / len(batch))


def reprocess_id(headers: Mapping[str, str]) -> str | None:
    """The reprocess replay a delivery belongs to, from its headers; None when live."""
    mark = headers.get(REPROCESS_HEADER)
    if not mark:
        return None
    # Copies made before the mark carried the replay id said "1"; their replay-id names it.
    return mark if mark != "1" else headers.get(_REPLAY_ID_HEADER) or mark


def _scope(meta: EventMeta) -> str:
    return meta.reprocess_id or LIVE

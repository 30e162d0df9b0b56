"""What happened to each event when a consumer group ran: the report tests assert on.

:class:`RecordingProcessor` is the production :class:`EventProcessor` with a note-taker
around it, nothing more: it runs every batch through the unchanged ``handle`` and
works out each event's outcome from what that left behind: a retry-tier or DLQ send
(``fail``), the group's idempotency claims before and after the batch, the event's
type. It then checks its per-event outcomes against the counts ``handle`` returned,
so a change in processing that the attribution does not follow shows up as a
:class:`OutcomeMismatch` instead of a wrong report. TestBroker and the pytest plugin's
``run_group`` (a real :class:`~tidings.consumer.runtime.ConsumerRuntime` on a real
broker) both use it, which is what makes their reports comparable.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from confluent_kafka import Message

from tidings import headers as h
from tidings.codec import DecodeError, SchemaCatalogue, SchemaVersion, codec_for
from tidings.consumer.context import EventMeta
from tidings.consumer.group import GroupSetup
from tidings.consumer.idempotency import LIVE, ClaimKey
from tidings.consumer.processing import EventProcessor, Outcome, Report, reprocess_id
from tidings.consumer.retry import error_class
from tidings.imports import import_reference
from tidings.topology import Topology


class OutcomeMismatch(AssertionError):
    """The per-event outcomes do not add up to what the processing reported."""


@dataclass(frozen=True)
class EventOutcome:
    """How one delivery of an event ended."""

    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int
    attempt: int
    outcome: Outcome
    #: For retried, dead-lettered and dropped events: the error that failed them.
    error_class: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Sent:
    """A message a run sent: a retry, a dead letter, or a follow-up event."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, str]
    #: The typed event (its model, or the Avro record without one); None when the
    #: payload is not a valid event (poison in a DLQ).
    event: Any

    @property
    def event_id(self) -> str | None:
        return self.headers.get(h.EVENT_ID)

    @property
    def event_type(self) -> str | None:
        return self.headers.get(h.EVENT_TYPE)

    @property
    def attempt(self) -> int | None:
        value = self.headers.get(h.ATTEMPT)
        return int(value) if value and value.isdigit() else None

    @property
    def error_class(self) -> str | None:
        return self.headers.get(h.ERROR_CLASS)

    @property
    def error_message(self) -> str | None:
        return self.headers.get(h.ERROR_MESSAGE)

    @property
    def not_before_ms(self) -> int | None:
        value = self.headers.get(h.NOT_BEFORE)
        return int(value) if value and value.isdigit() else None


@dataclass
class GroupRun:
    """What one run of a consumer group did, event by event."""

    group: str
    outcomes: list[EventOutcome] = field(default_factory=list)
    #: Events this run moved to one of the group's retry tiers, in send order.
    retries: list[Sent] = field(default_factory=list)
    #: Events this run moved to the group's dead-letter topics.
    dead_letters: list[Sent] = field(default_factory=list)
    #: Events the group's handlers published (``ctx.publish``), relayed from its outbox.
    follow_ups: list[Sent] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Deliveries per outcome, e.g. ``{"processed": 3, "retried": 1}``."""
        return dict(Counter(o.outcome.value for o in self.outcomes))

    def outcomes_of(self, event_id: str) -> list[str]:
        """Every delivery's outcome of one event, in order: ``["retried", "processed"]``."""
        return [o.outcome.value for o in self.outcomes if o.event_id == event_id]

    def final(self) -> dict[str, str]:
        """Each event's last outcome, by event id."""
        return {o.event_id: o.outcome.value for o in self.outcomes}

    def events(self, outcome: str | Outcome) -> list[str]:
        """The ids of the events whose delivery ended ``outcome`` (in delivery order)."""
        return [o.event_id for o in self.outcomes if o.outcome == outcome]


class OutcomeLog:
    """Outcomes recorded by the workers of one run (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: list[EventOutcome] = []
        self.mismatches: list[str] = []

    def add(self, outcomes: Iterable[EventOutcome]) -> None:
        with self._lock:
            self.outcomes.extend(outcomes)

    def mismatch(self, text: str) -> None:
        with self._lock:
            self.mismatches.append(text)

    def check(self) -> None:
        if self.mismatches:
            raise OutcomeMismatch("; ".join(self.mismatches))


class RecordingProcessor(EventProcessor):
    """The production processor, recording each delivery's outcome in :attr:`log`.

    Make one bound to a log with :func:`recording_processor`.
    """

    log: ClassVar[OutcomeLog]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed: dict[int, tuple[Outcome, BaseException]] = {}

    def fail(self, message: Message, meta: EventMeta, error: BaseException) -> Outcome:
        outcome = super().fail(message, meta, error)
        self._failed[id(message)] = (outcome, error)
        return outcome

    def handle(self, messages: Sequence[Message], report: Report | None = None,
               stop: Callable[[], bool] | None = None) -> dict[Outcome, int]:
        keys = [_claim_key(m) for m in messages]
        before = self._claimed(keys)
        self._failed = {}
        finished = [0]
        reported: Counter[Outcome] = Counter()

        def heard(done: int, counts: dict[Outcome, int]) -> None:
            # The reports are what the runtime counts (the worker sums them).
            finished[0] = max(finished[0], done)
            reported.update(counts)
            if report is not None:
                report(done, counts)

        result = super().handle(messages, heard, stop)
        after = self._claimed(keys)
        applied: set[ClaimKey] = set()
        outcomes: list[EventOutcome] = []
        # A stop (shutdown) leaves the rest of the batch unfinished, for the next owner.
        done = finished[0]
        for message, key in zip(messages[:done], keys[:done], strict=True):
            event_type, ignored = self._type_of(message)
            failed = self._failed.get(id(message))
            error: BaseException | None = None
            if failed is not None:
                outcome, error = failed
            elif ignored:
                outcome = Outcome.IGNORED
            elif key in before or key in applied:
                outcome = Outcome.DUPLICATE
            elif key in after:
                outcome = Outcome.PROCESSED
                applied.add(key)
            else:
                self.log.mismatch(f"{self.setup.group}: {key[1]} was neither routed nor "
                                  "claimed nor ignored")
                continue
            outcomes.append(EventOutcome(
                event_id=key[1], event_type=event_type, topic=message.topic() or "",
                partition=message.partition() or 0, offset=message.offset() or 0,
                attempt=_attempt(message), outcome=outcome,
                error_class=error_class(error) if error is not None else None,
                error_message=(str(error) or repr(error)) if error is not None else None))
        mine = Counter(o.outcome for o in outcomes)
        theirs = Counter({o: n for o, n in reported.items() if n})
        if mine != theirs:
            self.log.mismatch(f"{self.setup.group}: per-event outcomes {dict(mine)} but the "
                              f"batch reported {dict(theirs)}")
        self.log.add(outcomes)
        return result

    def _claimed(self, keys: Sequence[ClaimKey]) -> set[ClaimKey]:
        by_scope: dict[str, list[str]] = {}
        for scope, event_id in keys:
            by_scope.setdefault(scope, []).append(event_id)
        found: set[ClaimKey] = set()
        for scope, ids in by_scope.items():
            found.update((scope, i) for i in self.store.seen(self.connection, ids, scope))
        return found

    def _type_of(self, message: Message) -> tuple[str, bool]:
        """The event's type and whether this group ignores it (poison: the header's)."""
        try:
            event_type = self.setup.codec.decode(message.value() or b"").event
        except DecodeError:
            return h.header_dict(message.headers()).get(h.EVENT_TYPE, "unknown"), False
        return event_type, event_type not in self.setup.subscriptions


def recording_processor(log: OutcomeLog) -> type[RecordingProcessor]:
    """A :class:`RecordingProcessor` class that records into ``log``."""
    return type("BoundRecordingProcessor", (RecordingProcessor,), {"log": log})


def _claim_key(message: Message) -> ClaimKey:
    # The same event id and scope processing claims (EventProcessor._parse).
    headers = h.header_dict(message.headers())
    event_id = headers.get(h.EVENT_ID) or \
        f"{message.topic() or ''}:{message.partition() or 0}:{message.offset() or 0}"
    return reprocess_id(headers) or LIVE, event_id


def _attempt(message: Message) -> int:
    value = h.header_dict(message.headers()).get(h.ATTEMPT, "1")
    return max(1, int(value)) if value.isdigit() else 1


class EventReader:
    """Decodes any of a topology's events into its model, for reports."""

    def __init__(self, topology: Topology) -> None:
        declared = topology.declared_events()
        self.catalogue = SchemaCatalogue.from_events(declared)
        self.codec = codec_for(declared, topology.cluster.schema_registry_url, self.catalogue)
        self.models: dict[str, Any] = {}
        self.readers: dict[str, SchemaVersion] = {}
        for name, spec in topology.events.items():
            model = import_reference(spec.model, topology.root) if spec.model else None
            self.models[name] = model
            version = getattr(model, "schema_version", None)
            self.readers[name] = (self.catalogue.version(name, version) if version
                                  else self.catalogue.writer(name))

    def decode(self, payload: bytes) -> Any:
        """The typed event in ``payload``, or None when it is not a valid event."""
        try:
            decoded = self.codec.decode(payload)
            reader = self.readers.get(decoded.event)
            if reader is not None and reader.version != decoded.writer_version:
                decoded = self.codec.decode(payload, reader)
            model = self.models.get(decoded.event)
            return model.from_avro(decoded.record) if model is not None else decoded.record
        except Exception:  # poison, or a record the model rejects: no event to show
            return None

    def sent(self, message: Message) -> Sent:
        value = message.value() or b""
        return Sent(topic=message.topic() or "", partition=message.partition() or 0,
                    offset=message.offset() or 0, key=message.key(), value=value,
                    headers=h.header_dict(message.headers()), event=self.decode(value))


def reported_topics(topology: Topology, setup: GroupSetup) -> list[str]:
    """The topics a run's report reads: the group's retry tiers and DLQs, and the topics
    of the events it publishes (replies and events scheduled for later included)."""
    topics = [t for t in setup.topics if setup.is_retry_topic(t)]
    if setup.spec.dlq:
        topics += [f"{t}.{setup.group}.dlq" for t in topology.topics_of_consumer(setup.group)]
    producer = topology.producers.get(setup.group)
    if producer is not None:
        topics += [topology.events[e].topic for e in producer.publishes]
        # Answers (ctx.reply) go to the requester's reply topic, and events published
        # for later (ctx.publish(..., delay=)) to the scheduler's intake.
        topics += topology.reply_topics().values()
        scheduling = topology.scheduling_topics
        if scheduling is not None:
            topics.append(scheduling.intake)
    return list(dict.fromkeys(topics))


def sort_sent(run: GroupRun, setup: GroupSetup, sent: Sent) -> None:
    """File a message the run sent under retries, dead letters or follow-ups."""
    if sent.topic in setup.source_topic and setup.is_retry_topic(sent.topic):
        run.retries.append(sent)
    elif sent.topic.endswith(f".{setup.group}.dlq"):
        run.dead_letters.append(sent)
    elif sent.headers.get(h.PRODUCER) == setup.group and h.ATTEMPT not in sent.headers:
        run.follow_ups.append(sent)

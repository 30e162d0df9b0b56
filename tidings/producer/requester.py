"""The requesting side: send a request, wait for the reply that matches it.

Each publisher instance reads one partition of its service's reply topic, and puts
that partition in every request's ``reply-to`` (``orders.replies:3``); the responder
writes the reply to exactly that partition. Why a partition per instance, read
without a consumer group:

* a consumer group would move partitions between instances on every scale-up,
  restart or deploy, and the replies in flight to a moved partition would reach an
  instance that never sent their requests;
* reading every partition with every instance (choosing by header alone) costs each
  instance all of the service's replies; by partition, it reads about its share.

The partition is chosen from the instance's random id (or given). Two instances that
share a partition both read its replies; each ignores the other's, told apart by the
``correlation-id``, which starts with the instance id. A reply whose request is no
longer waiting (it timed out) is dropped and counted as late.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Histogram

from tidings import headers as h
from tidings.codec import DecodeError, codec_for
from tidings.errors import TidingsError
from tidings.kafka_clients import with_logger
from tidings.producer.prepare import PublishRefused
from tidings.topology import replies_topic_name

if TYPE_CHECKING:
    from tidings.codec.events import Event
    from tidings.producer.publisher import Publisher

log = logging.getLogger("tidings.requests")

ReplyT = TypeVar("ReplyT", bound="Event")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RequestFailed(TidingsError):
    """A request could not be answered (sent, or its reply read)."""


class RequestTimeout(RequestFailed):
    """No reply arrived within the timeout."""


class UnexpectedReply(RequestFailed):
    """The reply is not the event the requester expects."""


class RequestMetrics:
    """Requests sent, replies matched, timeouts and late replies of one service."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        labels = ["service", "event_type"]
        self.sent = Counter("tidings_requests_sent_total", "Requests published", labels,
                            registry=self.registry)
        self.replied = Counter("tidings_requests_replied_total",
                               "Requests whose reply arrived in time", labels,
                               registry=self.registry)
        self.timeouts = Counter("tidings_requests_timed_out_total",
                                "Requests that got no reply within their timeout", labels,
                                registry=self.registry)
        self.late = Counter("tidings_replies_late_total",
                            "Replies dropped because their request was no longer waiting",
                            ["service"], registry=self.registry)
        self.latency = Histogram("tidings_request_seconds", "Request to matched reply",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value(name, {"service": self.service, **labels})
        return found or 0.0


@dataclass
class _Waiting:
    future: Future[Any]
    expect: type[Event]
    sent_at: float


class Requester:
    """Sends requests for one :class:`Publisher` and matches their replies."""

    def __init__(self, publisher: Publisher, kafka_config: Mapping[str, Any], *,
                 partition: int | None = None) -> None:
        topology, service = publisher.topology, publisher.service
        spec = topology.producers[service].replies
        if spec is None:
            raise PublishRefused(
                f"{service} sends requests but declares no reply topic; add `replies: true` "
                f"under producers.{service} in {topology.path.name} and run "
                "`tidings topology apply`")
        self.publisher = publisher
        self.topic = replies_topic_name(service)
        partitions = spec.partitions or topology.defaults.partitions
        self.instance = uuid.uuid4().hex[:12]
        self.partition = (zlib.crc32(self.instance.encode()) % partitions
                          if partition is None else partition)
        if not 0 <= self.partition < partitions:
            raise PublishRefused(f"reply partition {self.partition} is not one of the "
                                 f"{partitions} of {self.topic}")
        self.reply_to = f"{self.topic}:{self.partition}"
        self.codec = codec_for(topology.declared_events(), topology.cluster.schema_registry_url,
                               publisher.preparer.catalogue)
        self.catalogue = publisher.preparer.catalogue
        self.metrics = RequestMetrics(service)
        self._waiting: dict[str, _Waiting] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(with_logger({
            **kafka_config,
            "group.id": f"{self.topic}.{self.instance}",  # never joins: partitions assigned
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 100,
        }))
        where = TopicPartition(self.topic, self.partition)
        try:
            _, high = self._consumer.get_watermark_offsets(where, timeout=10)
        except Exception as exc:
            self._consumer.close()
            raise RequestFailed(f"cannot read {self.reply_to} ({exc}); run `tidings "
                                "topology apply` to create the reply topic") from None
        # From the end as it is now, fixed before any request is sent: a reply can never
        # arrive before the position it would be read from.
        self._consumer.assign([TopicPartition(self.topic, self.partition, high)])
        self._thread = threading.Thread(target=self._listen, name="tidings-replies",
                                        daemon=True)
        self._thread.start()

    # -- sending -----------------------------------------------------------------------

    def send(self, event: Event, expect: type[ReplyT],
             **prepare: Any) -> tuple[str, Future[ReplyT]]:
        """Publish ``event`` as a request; returns its correlation id and the future of
        its reply (failed with :class:`RequestFailed` if the request is not delivered)."""
        prepared = self.publisher.prepare(event, **prepare)
        correlation = f"{self.instance}.{prepared.event_id}"
        request = replace(prepared, headers=[
            *prepared.headers, (h.CORRELATION_ID, correlation.encode()),
            (h.REPLY_TO, self.reply_to.encode())])
        future: Future[ReplyT] = Future()
        with self._lock:
            self._waiting[correlation] = _Waiting(future, expect, time.monotonic())
        delivery = self.publisher.send_prepared(request)
        self.metrics.sent.labels(self.metrics.service, prepared.event_type).inc()

        def not_sent(done: Future[Any]) -> None:
            error = done.exception()
            if error is not None:
                self._forget(correlation)
                _settle(future, error=RequestFailed(f"request {prepared.event_id} was not "
                                                    f"sent: {error}"))

        delivery.add_done_callback(not_sent)
        return correlation, future

    def request_sync(self, event: Event, expect: type[ReplyT], timeout: float = 5.0,
                     **prepare: Any) -> ReplyT:
        """Send ``event`` and block until its reply (or :class:`RequestTimeout`)."""
        correlation, future = self.send(event, expect, **prepare)
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            raise self._timed_out(correlation, event, timeout) from None

    async def request(self, event: Event, expect: type[ReplyT], timeout: float = 5.0,
                      **prepare: Any) -> ReplyT:
        """Send ``event`` and await its reply without blocking the event loop."""
        correlation, future = self.send(event, expect, **prepare)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout=timeout)
        except TimeoutError:
            raise self._timed_out(correlation, event, timeout) from None

    def _timed_out(self, correlation: str, event: Event, timeout: float) -> RequestTimeout:
        self._forget(correlation)
        self.metrics.timeouts.labels(self.metrics.service, event.event_type).inc()
        return RequestTimeout(f"no reply to {event.event_type} within {timeout:g}s "
                              f"(correlation-id {correlation}, reply-to {self.reply_to}); "
                              "is a consumer group that answers it running?")

    def _forget(self, correlation: str) -> None:
        with self._lock:
            self._waiting.pop(correlation, None)

    @property
    def waiting(self) -> int:
        """Requests sent whose reply has not arrived (and that have not timed out)."""
        return len(self._waiting)

    # -- receiving ---------------------------------------------------------------------

    def _listen(self) -> None:
        prefix = f"{self.instance}."
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, timeout=0.1)
            except Exception as exc:  # the consumer was closed under us: stopping
                if not self._stop.is_set():
                    log.warning("reply listener stopped: %s", exc)
                return
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("reading replies from %s: %s", self.reply_to, error.str())
                    continue
                correlation = h.HeaderView(message.headers()).get(h.CORRELATION_ID) or ""
                if not correlation.startswith(prefix):
                    continue  # another instance's reply on a shared partition
                with self._lock:
                    waiting = self._waiting.pop(correlation, None)
                if waiting is None:
                    self.metrics.late.labels(self.metrics.service).inc()
                    log.info("late reply for %s dropped (its request timed out)", correlation)
                    continue
                self._resolve(waiting, message)

    def _resolve(self, waiting: _Waiting, message: Message) -> None:
        expect = waiting.expect
        payload = message.value() or b""
        try:
            decoded = self.codec.decode(payload)
            if decoded.event != expect.event_type:
                raise UnexpectedReply(f"expected a {expect.event_type} reply, got "
                                      f"{decoded.event}")
            record = decoded.record
            version = getattr(expect, "schema_version", None)
            if version and version != decoded.writer_version:
                record = self.codec.decode(payload,
                                           self.catalogue.version(decoded.event, version)).record
            reply = expect.from_avro(record)
        except (DecodeError, UnexpectedReply, ValueError) as error:
            failure = error if isinstance(error, RequestFailed) else \
                UnexpectedReply(f"reply could not be read as {expect.event_type}: {error}")
            _settle(waiting.future, error=failure)
            return
        self.metrics.replied.labels(self.metrics.service, expect.event_type).inc()
        self.metrics.latency.labels(self.metrics.service, expect.event_type).observe(
            time.monotonic() - waiting.sent_at)
        _settle(waiting.future, result=reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for item in waiting.values():
            _settle(item.future, error=RequestFailed("the publisher closed"))


def _settle(future: Future[Any], *, result: Any = None,
            error: BaseException | None = None) -> None:
    """Complete ``future`` unless it is already done (an awaiting side may have
    cancelled it on its timeout)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass

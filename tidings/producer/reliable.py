"""A confluent-kafka producer whose every send resolves a future on delivery.

librdkafka reports delivery through callbacks that run only inside ``poll()``; one
background thread polls, so synchronous callers, batches and asyncio callers all
wait on the broker's acknowledgement instead of flushing the whole queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from confluent_kafka import KafkaError, Message, Producer

from tidings.errors import TidingsError
from tidings.kafka_clients import watching_logins
from tidings.topology.model import DEFAULT_PARTITIONER

#: librdkafka's default producer is *not* idempotent; ours always is.
RELIABLE_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "max.in.flight.requests.per.connection": 5,
}


@dataclass(frozen=True)
class Delivery:
    """Where the broker stored an event."""

    topic: str
    partition: int
    offset: int
    event_id: str | None = None


class DeliveryFailed(TidingsError):
    """The broker did not acknowledge an event within the delivery timeout."""

    #: The Kafka error's name (``_MSG_TIMED_OUT``, ...) when a delivery report gave one.
    code = ""


#: One message of :meth:`ReliableProducer.send_batch`: topic, value, key, headers, event id.
Outgoing = tuple[str, bytes, "bytes | None", "list[tuple[str, bytes]] | None", "str | None"]


class DeliveryBatch:
    """The delivery reports of a batch, in send order: a :class:`Delivery`, a
    :class:`DeliveryFailed`, or None while the broker has not answered."""

    def __init__(self, size: int, producer: ReliableProducer | None = None) -> None:
        self.results: list[Delivery | DeliveryFailed | None] = [None] * size
        self.event_ids: list[str | None] = [None] * size
        self._producer = producer
        self._left = size
        self._lock = threading.Lock()
        self._done = threading.Event()
        if size == 0:
            self._done.set()

    def report(self, index: int, outcome: Delivery | DeliveryFailed) -> None:
        self.results[index] = outcome
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self._done.set()

    def on_delivery(self, index: int, error: KafkaError | None, message: Message) -> None:
        """librdkafka's report for message ``index`` (bound with functools.partial: one
        small object per message instead of a closure and a Future)."""
        event_id = self.event_ids[index]
        if error is not None:
            assert self._producer is not None
            self.report(index, self._producer._failure(error, str(message.topic()), event_id))
        else:
            self.report(index, Delivery(str(message.topic()), message.partition() or 0,
                                        message.offset() or 0, event_id))

    def wait(self, timeout: float | None = None) -> bool:
        """True once every message has a report (within ``timeout`` seconds)."""
        return self._done.wait(timeout)


class DeliveryStream:
    """Many messages with at most ``window`` unacknowledged at once, and one shared
    delivery callback: for copies (replay, redrive) that need counts and the first
    failure, not a result per message. :meth:`drain` waits for the rest and raises the
    first failure, if any."""

    def __init__(self, producer: ReliableProducer, window: int) -> None:
        self._producer = producer
        self.window = window
        self.sent = 0  # written by the sending thread only
        self.delivered = 0  # written by librdkafka's callback (the poll thread) only
        self.failure: DeliveryFailed | None = None
        self._waiting = False
        self._wake = threading.Condition()

    def send(self, topic: str, value: bytes, key: bytes | None,
             headers: list[tuple[str, bytes]] | None, partition: int) -> None:
        if self.failure is not None:
            raise self.failure
        if self.sent - self.delivered >= self.window:
            self._wait_below(self.window)
        produce = self._producer._producer.produce
        try:
            produce(topic, value, key, partition, on_delivery=self._report,
                    headers=cast("list[tuple[str, str | bytes | None]] | None", headers))
        except BufferError:
            self._producer._produce(topic, {"value": value, "key": key, "partition": partition,
                                            "headers": headers, "on_delivery": self._report})
        self.sent += 1

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is not None and self.failure is None:
            self.failure = self._producer._failure(error, str(message.topic()), None)
        self.delivered += 1
        if self._waiting:
            with self._wake:
                self._wake.notify_all()

    def _wait_below(self, limit: int) -> None:
        deadline = time.monotonic() + self._producer.delivery_timeout + 5
        with self._wake:
            self._waiting = True
            try:
                while self.sent - self.delivered >= limit and self.failure is None:
                    if time.monotonic() > deadline:
                        raise DeliveryFailed(
                            f"{self.sent - self.delivered} message(s) unacknowledged for "
                            f"{self._producer.delivery_timeout:g}s; is the broker at "
                            f"{self._producer.bootstrap} reachable?")
                    self._wake.wait(0.05)
            finally:
                self._waiting = False
        if self.failure is not None:
            raise self.failure

    def drain(self) -> None:
        """Wait until every message sent is acknowledged; raise the first failure."""
        self._wait_below(1)


class ReliableProducer:
    """Idempotent, ``acks=all`` producer with per-message delivery futures."""

    def __init__(self, config: Mapping[str, Any], *, delivery_timeout: float = 30.0) -> None:
        self.bootstrap = str(config.get("bootstrap.servers", "?"))
        self.delivery_timeout = delivery_timeout
        # Keys land where Java's producers put them (murmur2) unless the config (the
        # topology's cluster.partitioner) chooses another partitioner.
        merged = {"partitioner": DEFAULT_PARTITIONER, **config, **RELIABLE_DEFAULTS}
        # Bounds how long a message may wait in librdkafka for the broker, so an
        # unreachable cluster surfaces as an error instead of an endless retry.
        merged["message.timeout.ms"] = int(delivery_timeout * 1000)
        # A refused login (wrong password) otherwise shows only as a delivery timeout.
        merged, self._login = watching_logins(merged)
        self._producer = Producer(merged)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="tidings-producer-poll",
                                        daemon=True)
        self._poller.start()

    def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        event_id: str | None = None,
        partition: int | None = None,
    ) -> Future[Delivery]:
        """Queue one message; the future resolves when the broker has it, or fails."""
        future: Future[Delivery] = Future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                future.set_exception(self._failure(error, topic, event_id))
            else:
                future.set_result(Delivery(str(message.topic()), message.partition() or 0,
                                           message.offset() or 0, event_id))

        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers,
                                  "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        self._produce(topic, kwargs)
        return future

    def send_batch(self, messages: Iterable[Outgoing]) -> DeliveryBatch:
        """Queue ``messages`` in order; their reports land in one :class:`DeliveryBatch`.

        What :meth:`send` does for each message, without a future (and its lock) per
        message: a batch waits once, for all of its reports.
        """
        items = messages if isinstance(messages, Sequence) else list(messages)
        batch = DeliveryBatch(len(items), self)
        report, produce = batch.on_delivery, self._producer.produce
        event_ids = batch.event_ids
        for index, (topic, value, key, headers, event_id) in enumerate(items):
            event_ids[index] = event_id
            callback = partial(report, index)
            try:
                produce(topic, value, key, headers=headers, on_delivery=callback)
            except BufferError:
                self._produce(topic, {"key": key, "value": value, "headers": headers,
                                      "on_delivery": callback})
        return batch

    def stream(self, window: int = 10_000) -> DeliveryStream:
        """A :class:`DeliveryStream` over this producer."""
        return DeliveryStream(self, window)

    def _produce(self, topic: str, kwargs: dict[str, Any]) -> None:
        try:
            self._producer.produce(topic, **kwargs)
            return
        except BufferError:
            pass
        deadline = time.monotonic() + self.delivery_timeout
        while True:
            # The local queue is full: wait for deliveries to drain it, within bounds.
            if time.monotonic() > deadline:
                raise DeliveryFailed(
                    f"producer queue stayed full for {self.delivery_timeout:g}s; "
                    f"is the broker at {self.bootstrap} reachable?"
                ) from None
            time.sleep(0.01)
            try:
                self._producer.produce(topic, **kwargs)
                return
            except BufferError:
                continue

    def flush(self, timeout: float | None = None) -> int:
        """Wait for queued messages; returns how many are still undelivered."""
        remaining: int = self._producer.flush(self.delivery_timeout if timeout is None
                                              else timeout)
        return remaining

    def close(self, timeout: float | None = None) -> int:
        remaining = self.flush(timeout)
        self._stop.set()
        self._poller.join(timeout=5)
        return remaining

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _failure(self, error: KafkaError, topic: str, event_id: str | None) -> DeliveryFailed:
        failed = DeliveryFailed(self._explain(error, topic, event_id))
        failed.code = error.name()
        return failed

    def _explain(self, error: KafkaError, topic: str, event_id: str | None) -> str:
        what = f"event {event_id}" if event_id else "message"
        hint = ""
        refused = self._login.explain()
        if refused is not None:
            hint = f"; {refused}"
        elif error.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT,
                            KafkaError._ALL_BROKERS_DOWN):
            hint = f"; is the broker at {self.bootstrap} up?"
        elif error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            hint = "; run `tidings topology apply` to create it"
        return f"{what} was not delivered to {topic}: {error.str()}{hint}"

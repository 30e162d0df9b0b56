"""Kafka's transport, in memory: topics of partitions of messages, and a producer.

Only what the consumer's processing and the outbox relay touch is here. A
:class:`MemoryMessage` answers the calls :class:`~tidings.consumer.processing.EventProcessor`
makes on a ``confluent_kafka.Message``; :class:`InMemoryProducer` is a
:class:`~tidings.producer.reliable.ReliableProducer` whose sends land in
:class:`InMemoryTopics` at once. As on a cluster with auto-creation off, a topic the
topology does not imply does not exist.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future

from tidings.producer.reliable import (
    Delivery,
    DeliveryBatch,
    DeliveryFailed,
    Outgoing,
    ReliableProducer,
)

Headers = list[tuple[str, bytes]]


class MemoryMessage:
    """One stored message, with the accessors of ``confluent_kafka.Message``."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None, headers: Headers, timestamp_ms: int) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._key = key
        self._value = value
        self._headers = headers
        self._timestamp = timestamp_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers:
        return list(self._headers)

    def timestamp(self) -> tuple[int, int]:
        return 1, self._timestamp  # TIMESTAMP_CREATE_TIME

    def error(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"MemoryMessage({self._topic}[{self._partition}]@{self._offset})"


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java's DefaultPartitioner, librdkafka's ``murmur2``), unsigned."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail, rest = length - length % 4, length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def _fnv1a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def partition_for(key: bytes, partitions: int, partitioner: str) -> int:
    """The partition librdkafka's ``partitioner`` picks for a keyed message."""
    if partitioner.startswith("murmur2"):
        return (murmur2(key) & 0x7FFFFFFF) % partitions
    if partitioner.startswith("fnv1a"):
        hashed = _fnv1a(key)
        signed = hashed - (1 << 32) if hashed & 0x80000000 else hashed
        return abs(signed) % partitions  # Sarama's placement, which librdkafka matches
    if partitioner.startswith("consistent"):
        return zlib.crc32(key) % partitions
    return zlib.crc32(key) % partitions  # "random" ignores keys; any partition will do


class InMemoryTopics:
    """The topics of one topology, each a list of partitions of messages."""

    def __init__(self, partitions: Mapping[str, int], clock: Callable[[], int],
                 partitioner: str = "murmur2_random") -> None:
        self.partitioner = partitioner
        self._partitions: dict[str, list[list[MemoryMessage]]] = {
            topic: [[] for _ in range(count)] for topic, count in partitions.items()}
        self._clock = clock
        self._round_robin = itertools.count()
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._partitions)

    def partition_count(self, topic: str) -> int:
        return len(self._topic(topic))

    def append(self, topic: str, value: bytes | None, *, key: bytes | None = None,
               headers: Headers | None = None, partition: int | None = None) -> MemoryMessage:
        """Store a message as a producer would: a key picks its partition with the
        topology's partitioner (murmur2 by default, as Java's producers), no key goes
        round-robin."""
        parts = self._topic(topic)
        if partition is None:
            partition = partition_for(key, len(parts), self.partitioner) if key is not None \
                else next(self._round_robin) % len(parts)
        with self._lock:
            log = parts[partition]
            message = MemoryMessage(topic, partition, len(log), key, value,
                                    list(headers or ()), self._clock())
            log.append(message)
        return message

    def read(self, topic: str, partition: int, start: int = 0) -> list[MemoryMessage]:
        return self._topic(topic)[partition][start:]

    def messages(self, topic: str) -> list[MemoryMessage]:
        """Every message of ``topic``, partition by partition."""
        return [m for part in self._topic(topic) for m in part]

    def end(self, topic: str, partition: int) -> int:
        return len(self._topic(topic)[partition])

    def _topic(self, topic: str) -> list[list[MemoryMessage]]:
        parts = self._partitions.get(topic)
        if parts is None:
            raise DeliveryFailed(f"message was not delivered to {topic}: Unknown topic or "
                                 "partition; no such topic in the topology")
        return parts


class InMemoryProducer(ReliableProducer):
    """A :class:`ReliableProducer` whose every send is stored (and acknowledged) at once."""

    def __init__(self, topics: InMemoryTopics) -> None:  # no librdkafka client at all
        self.bootstrap = "memory"
        self.delivery_timeout = 1.0
        self.topics = topics

    def send(self, topic: str, value: bytes, *, key: bytes | None = None,
             headers: Headers | None = None, event_id: str | None = None,
             partition: int | None = None) -> Future[Delivery]:
        future: Future[Delivery] = Future()
        try:
            message = self.topics.append(topic, value, key=key, headers=headers,
                                         partition=partition)
        except DeliveryFailed as error:
            future.set_exception(error)
        else:
            future.set_result(Delivery(topic, message.partition(), message.offset(), event_id))
        return future

    def send_batch(self, messages: Iterable[Outgoing]) -> DeliveryBatch:
        items = list(messages)
        batch = DeliveryBatch(len(items))
        for index, (topic, value, key, headers, event_id) in enumerate(items):
            try:
                batch.report(index, self.send(topic, value, key=key, headers=headers,
                                              event_id=event_id).result())
            except DeliveryFailed as error:
                batch.report(index, error)
        return batch

    def flush(self, timeout: float | None = None) -> int:
        return 0

    def close(self, timeout: float | None = None) -> int:
        return 0


def wall_clock_ms() -> int:
    return int(time.time() * 1000)

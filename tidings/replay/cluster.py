"""The Kafka calls replay and DLQ operations make, each turned into a one-line error.

Everything here reads or writes through the AdminClient, except :func:`read_range`,
which reads records with a throwaway consumer that never joins or commits a group.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from tidings.errors import TidingsError
from tidings.kafka_clients import (
    admin_client,
    earliest_offset,
    fetch_metadata,
    latest_offset,
    with_logger,
)
from tidings.settings import Settings, kafka_client_config
from tidings.topology import Topology

Watermarks = dict[int, tuple[int, int]]  # partition -> (low, high)


class ReplayError(TidingsError):
    """A replay or DLQ operation was refused; nothing was changed."""


@dataclass(frozen=True)
class GroupStatus:
    """Whether a consumer group has members right now."""

    group: str
    state: str
    members: int

    @property
    def active(self) -> bool:
        return self.members > 0 or self.state not in ("EMPTY", "DEAD", "UNKNOWN")


class Cluster:
    """The cluster a topology targets, with the admin calls replay needs."""

    def __init__(self, topology: Topology, config: Mapping[str, Any] | None = None,
                 timeout: float | None = None) -> None:
        settings = Settings()
        self.topology = topology
        self.config: dict[str, Any] = dict(config) if config is not None else \
            kafka_client_config(settings, topology.cluster.client_properties,
                                topology.cluster.bootstrap_servers,
                                near=topology.root)
        self.bootstrap = str(self.config.get("bootstrap.servers", "?"))
        self.timeout = timeout if timeout is not None else settings.admin_timeout_s
        self.admin: AdminClient = admin_client(self.config)

    # -- metadata --------------------------------------------------------------------

    def partitions(self, topic: str) -> list[int]:
        """The partitions of ``topic``; a one-line error when it does not exist."""
        metadata = fetch_metadata(self.admin, self.bootstrap, self.timeout)
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            raise ReplayError(f"topic {topic} does not exist on {self.bootstrap}; "
                              "run `tidings topology apply` to create it")
        return sorted(meta.partitions)

    def brokers(self) -> int:
        return len(fetch_metadata(self.admin, self.bootstrap, self.timeout).brokers)

    def group_status(self, group: str) -> GroupStatus:
        future = self.admin.describe_consumer_groups([group], request_timeout=self.timeout)
        try:
            description = future[group].result(timeout=self.timeout)
        except KafkaException as exc:
            raise ReplayError(f"cannot describe consumer group {group}: {_text(exc)}") from None
        state = description.state
        name = state.name if isinstance(state, ConsumerGroupState) else str(state)
        return GroupStatus(group, name, len(description.members or []))

    # -- offsets ---------------------------------------------------------------------

    def watermarks(self, topic: str, partitions: list[int]) -> Watermarks:
        """``(low, high)`` per partition: the first offset kept and the next one written."""
        low = self._list_offsets(topic, {p: earliest_offset() for p in partitions})
        high = self._list_offsets(topic, {p: latest_offset() for p in partitions})
        return {p: (low[p], high[p]) for p in partitions}

    def offsets_for_time(self, topic: str, partitions: list[int],
                         timestamp_ms: int) -> dict[int, int]:
        """Per partition the first offset whose timestamp is >= ``timestamp_ms``;
        -1 where no record is that recent."""
        return self._list_offsets(
            topic, {p: OffsetSpec.for_timestamp(timestamp_ms) for p in partitions})

    def _list_offsets(self, topic: str, specs: Mapping[int, Any]) -> dict[int, int]:
        if not specs:
            return {}
        result: dict[int, int] = {}
        deadline = time.monotonic() + self.timeout
        while True:
            request = {TopicPartition(topic, p): spec for p, spec in specs.items()
                       if p not in result}
            futures = self.admin.list_offsets(request, request_timeout=self.timeout)
            moving: list[int] = []
            for tp, future in futures.items():
                try:
                    result[tp.partition] = int(future.result(timeout=self.timeout).offset)
                except KafkaException as exc:
                    # A topic created a moment ago may not have settled on its leader.
                    if _leader_moving(exc) and time.monotonic() < deadline:
                        moving.append(tp.partition)
                        continue
                    raise ReplayError(f"cannot read offsets of {topic}[{tp.partition}]: "
                                      f"{_text(exc)}") from None
            if not moving:
                return result
            time.sleep(0.2)

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """The group's committed offset per partition of ``topic`` (None: never committed)."""
        request = [ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p) for p in partitions])]
        futures = self.admin.list_consumer_group_offsets(request, request_timeout=self.timeout)
        try:
            answer = futures[group].result(timeout=self.timeout)
        except KafkaException as exc:
            raise ReplayError(f"cannot read the offsets of group {group}: {_text(exc)}") \
                from None
        offsets: dict[int, int | None] = dict.fromkeys(partitions)
        for tp in answer.topic_partitions or []:
            if tp.topic == topic and tp.offset >= 0:
                offsets[tp.partition] = int(tp.offset)
        return offsets

    def alter_committed(self, group: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Set the group's committed offsets; the broker refuses while it has members."""
        if not offsets:
            return
        request = [ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())])]
        futures = self.admin.alter_consumer_group_offsets(request, request_timeout=self.timeout)
        try:
            answer = futures[group].result(timeout=self.timeout)
        except KafkaException as exc:
            raise ReplayError(f"could not set the offsets of group {group}: {_text(exc)} "
                              "(is it running? stop it first)") from None
        failed = [tp for tp in answer.topic_partitions or [] if tp.error is not None]
        if failed:
            raise ReplayError(f"could not set the offsets of group {group} on "
                              f"{topic}[{failed[0].partition}]: {failed[0].error.str()}")

    def delete_before(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Delete every record of each partition below the given offset."""
        request = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        if not request:
            return
        futures = self.admin.delete_records(request, request_timeout=self.timeout,
                                            operation_timeout=self.timeout)
        for tp, future in futures.items():
            try:
                future.result(timeout=self.timeout)
            except KafkaException as exc:
                raise ReplayError(f"could not delete records of {topic}[{tp.partition}]: "
                                  f"{_text(exc)}") from None

    # -- records ---------------------------------------------------------------------

    def consumer(self, **overrides: Any) -> KafkaConsumer:
        """A consumer for reading by assignment only: it never commits. ``overrides``
        are librdkafka properties with dots as underscores (``fetch_wait_max_ms=10``)."""
        return KafkaConsumer(with_logger({
            **self.config,
            "group.id": f"tidings-replay-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **{k.replace("_", "."): v for k, v in overrides.items()},
        }))

    def read_range(self, topic: str, ranges: Mapping[int, tuple[int, int]],
                   *, idle_timeout: float | None = None) -> Iterator[Message]:
        """Records of each partition in ``[start, end)``, partition by partition mixed in
        fetch order (each partition's own records in offset order)."""
        consumer = self.consumer()
        try:
            yield from read_assigned(consumer, topic, ranges,
                                     idle_timeout or max(self.timeout, 10.0))
        finally:
            consumer.close()


def read_assigned(consumer: KafkaConsumer, topic: str, ranges: Mapping[int, tuple[int, int]],
                  idle_timeout: float) -> Iterator[Message]:
    """Read ``[start, end)`` per partition with ``consumer``; raises if the broker goes
    quiet for ``idle_timeout`` seconds before the ends are reached."""
    pending = {p: end for p, (start, end) in ranges.items() if end > start}
    if not pending:
        return
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in pending])
    last_progress = time.monotonic()
    position = {p: ranges[p][0] for p in pending}
    while pending:
        # Ask for no more than the ranges still hold: consume() waits out its timeout
        # when fewer records than asked for come, which near a range's end they do.
        left = sum(end - position[p] for p, end in pending.items())
        messages = consumer.consume(max(1, min(500, left)), timeout=0.5)
        if not messages and time.monotonic() - last_progress > idle_timeout:
            missing = ", ".join(f"[{p}] before {end}" for p, end in sorted(pending.items()))
            raise ReplayError(f"reading {topic} stalled for {idle_timeout:g}s ({missing}); "
                              "were records deleted meanwhile?")
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise ReplayError(f"cannot read {topic}: {error.str()}")
                continue
            last_progress = time.monotonic()
            partition = message.partition() or 0
            end = pending.get(partition)
            offset = message.offset() or 0
            if end is None:
                continue
            position[partition] = offset + 1
            if offset < end:
                yield message
            if offset >= end - 1:
                del pending[partition]
                consumer.incremental_unassign([TopicPartition(topic, partition)])


def _leader_moving(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in (
        KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.FENCED_LEADER_EPOCH)


def _text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)

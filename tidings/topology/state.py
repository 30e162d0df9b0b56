"""Which topics a topology manages, kept in a compacted topic on the cluster itself.

A cluster is usually shared; a topic missing from topology.yaml may belong to some
other team. Like Terraform's state, we remember what *this* topology created (keyed
by its ``name``), and plan deletions only among those.

The record also keeps the partitioner the topology declared when it was applied
(``cluster.partitioner``): the partitioner is a client setting that Kafka itself
does not know, so this is the only place ``plan`` can learn that it changes. On a
cluster that enforces ACLs it keeps the ACLs the topology implied, so that ``plan``
removes only those when the file stops implying them, never another team's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tidings.errors import TidingsError
from tidings.kafka_clients import with_logger
from tidings.topology.acls import Acl, Operation, PatternType, Permission, ResourceType

STATE_TOPIC = "__tidings_topology_state"

UNRECORDED_PARTITIONER = "consistent_random"
"""What a record without a partitioner means: it was written before Tidings recorded
one, when its producers ran with librdkafka's default partitioner."""


@dataclass(frozen=True)
class AppliedState:
    """What the last ``apply`` of a topology recorded."""

    topics: frozenset[str]
    partitioner: str
    #: The ACLs the topology implied at that apply (empty before ACLs were managed).
    acls: frozenset[Acl] = frozenset()


def read_managed(config: Mapping[str, Any], name: str, timeout: float) -> frozenset[str]:
    """Topics recorded for topology ``name``; empty when nothing was applied yet."""
    state = read_applied(config, name, timeout)
    return state.topics if state is not None else frozenset()


def read_applied(config: Mapping[str, Any], name: str, timeout: float) -> AppliedState | None:
    """The last record of topology ``name``; None when it was never applied."""
    consumer = Consumer(with_logger({
        **config,
        "group.id": f"tidings-state-reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }))
    try:
        if STATE_TOPIC not in consumer.list_topics(timeout=timeout).topics:
            return None
        low, high = consumer.get_watermark_offsets(TopicPartition(STATE_TOPIC, 0),
                                                   timeout=timeout)
        if high <= low:
            return None
        consumer.assign([TopicPartition(STATE_TOPIC, 0, low)])
        latest: AppliedState | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break
                continue
            if message.key() == name.encode():
                value = message.value()
                latest = _parse_record(value) if value else None
            if (message.offset() or 0) >= high - 1:
                break
        return latest
    finally:
        consumer.close()


def _parse_record(value: bytes) -> AppliedState:
    record = json.loads(value)
    return AppliedState(frozenset(record["topics"]),
                        str(record.get("partitioner") or UNRECORDED_PARTITIONER),
                        frozenset(_acl_of(entry) for entry in record.get("acls", [])))


def _acl_entry(acl: Acl) -> list[str]:
    return [acl.principal, acl.resource_type.value, acl.resource_name,
            acl.pattern_type.value, acl.operation.value, acl.permission.value, acl.host]


def _acl_of(entry: list[str]) -> Acl:
    principal, kind, name, pattern, operation, permission, host = entry
    return Acl(principal, ResourceType(kind), name, PatternType(pattern), Operation(operation),
               Permission(permission), host)


def write_managed(
    admin: AdminClient, config: Mapping[str, Any], name: str, topics: list[str],
    brokers: int, timeout: float, partitioner: str | None = None,
    acls: frozenset[Acl] = frozenset(),
) -> None:
    """Record the topics topology ``name`` now manages, its partitioner and its ACLs
    (creating the state topic once)."""
    _ensure_state_topic(admin, brokers, timeout)
    producer = Producer(with_logger({**config, "enable.idempotence": True, "acks": "all"}))
    record: dict[str, Any] = {"topics": sorted(topics), "applied_at": int(time.time() * 1000)}
    if partitioner is not None:
        record["partitioner"] = partitioner
    if acls:
        record["acls"] = [_acl_entry(acl) for acl in sorted(acls)]
    errors: list[str] = []
    producer.produce(
        STATE_TOPIC, key=name.encode(), value=json.dumps(record).encode(),
        on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
    )
    if producer.flush(timeout) > 0 or errors:
        raise TidingsError(
            f"topics were applied, but recording them in {STATE_TOPIC} failed "
            f"({errors[0] if errors else 'timed out'}); run apply again"
        )


def _ensure_state_topic(admin: AdminClient, brokers: int, timeout: float) -> None:
    replication = min(3, max(1, brokers))
    topic = NewTopic(STATE_TOPIC, num_partitions=1, replication_factor=replication,
                     config={"cleanup.policy": "compact"})
    future = admin.create_topics([topic], request_timeout=timeout)[STATE_TOPIC]
    try:
        future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise TidingsError(f"cannot create {STATE_TOPIC}: {exc.args[0].str()}") from None

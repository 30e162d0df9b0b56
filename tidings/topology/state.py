"""Which topics a topology manages, kept in a compacted topic on the cluster itself.

A cluster is usually shared; a topic missing from topology.yaml may belong to some
other team. Like Terraform's state, we remember what *this* topology created (keyed
by its ``name``), and plan deletions only among those.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tidings.errors import TidingsError
from tidings.kafka_clients import with_logger

STATE_TOPIC = "__tidings_topology_state"


def read_managed(config: Mapping[str, Any], name: str, timeout: float) -> frozenset[str]:
    """Topics recorded for topology ``name``; empty when nothing was applied yet."""
    consumer = Consumer(with_logger({
        **config,
        "group.id": f"tidings-state-reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }))
    try:
        if STATE_TOPIC not in consumer.list_topics(timeout=timeout).topics:
            return frozenset()
        low, high = consumer.get_watermark_offsets(TopicPartition(STATE_TOPIC, 0),
                                                   timeout=timeout)
        if high <= low:
            return frozenset()
        consumer.assign([TopicPartition(STATE_TOPIC, 0, low)])
        latest: frozenset[str] = frozenset()
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
                latest = frozenset(json.loads(value)["topics"]) if value else frozenset()
            if (message.offset() or 0) >= high - 1:
                break
        return latest
    finally:
        consumer.close()


def write_managed(
    admin: AdminClient, config: Mapping[str, Any], name: str, topics: list[str],
    brokers: int, timeout: float,
) -> None:
    """Record the topics topology ``name`` now manages (creating the state topic once)."""
    _ensure_state_topic(admin, brokers, timeout)
    producer = Producer(with_logger({**config, "enable.idempotence": True, "acks": "all"}))
    record = {"topics": sorted(topics), "applied_at": int(time.time() * 1000)}
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

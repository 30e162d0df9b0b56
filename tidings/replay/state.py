"""Replay state kept on the cluster: plans of unfinished runs, and rewind undo records.

One compacted, single-partition topic, ``__tidings_replay_state``, keyed by
``run/<kind>/<group>/<topic>`` (the plan of the latest copy run, so an interrupted
run can be resumed with exactly the same ranges) and ``undo/<group>`` (the offsets a
group had before each rewind, a stack). It lives with the offsets it restores, on
the cluster: it survives the operator's machine, container or working directory.
The *progress* of a copy is not kept here: the replay topic is its own progress log
(see :mod:`tidings.replay.copier`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from tidings.kafka_clients import fetch_metadata, with_logger
from tidings.producer.reliable import RELIABLE_DEFAULTS
from tidings.replay.cluster import Cluster, ReplayError

STATE_TOPIC = "__tidings_replay_state"


class StateStore:
    """Read and write JSON records by key in the state topic."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def get(self, key: str) -> dict[str, Any] | None:
        """The latest value of ``key``; None when absent or deleted."""
        return self._read().get(key)

    def put(self, key: str, value: dict[str, Any] | None) -> None:
        """Write ``value`` (None deletes the key); returns once the broker has it."""
        self._ensure_topic()
        producer = Producer(with_logger({**self.cluster.config, **RELIABLE_DEFAULTS}))
        errors: list[str] = []
        producer.produce(
            STATE_TOPIC, key=key.encode(),
            value=None if value is None else json.dumps(value, sort_keys=True).encode(),
            on_delivery=lambda err, _msg: errors.append(err.str()) if err else None)
        if producer.flush(self.cluster.timeout) > 0 or errors:
            raise ReplayError(f"could not record replay state in {STATE_TOPIC}: "
                              f"{errors[0] if errors else 'timed out'}; nothing was changed")

    def _read(self) -> dict[str, dict[str, Any] | None]:
        cluster = self.cluster
        metadata = fetch_metadata(cluster.admin, cluster.bootstrap, cluster.timeout)
        if STATE_TOPIC not in metadata.topics:
            return {}
        low, high = cluster.watermarks(STATE_TOPIC, [0])[0]
        latest: dict[str, dict[str, Any] | None] = {}
        for message in cluster.read_range(STATE_TOPIC, {0: (low, high)}):
            key = (message.key() or b"").decode()
            value = message.value()
            latest[key] = json.loads(value) if value else None
        return latest

    def _ensure_topic(self) -> None:
        cluster = self.cluster
        if STATE_TOPIC in fetch_metadata(cluster.admin, cluster.bootstrap,
                                          cluster.timeout).topics:
            return
        topic = NewTopic(STATE_TOPIC, num_partitions=1,
                         replication_factor=min(3, max(1, cluster.brokers())),
                         config={"cleanup.policy": "compact"})
        future = cluster.admin.create_topics([topic], request_timeout=cluster.timeout)
        try:
            future[STATE_TOPIC].result(timeout=cluster.timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if not isinstance(error, KafkaError) or error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ReplayError(f"cannot create {STATE_TOPIC}: {exc}") from None
        deadline = time.monotonic() + cluster.timeout
        while time.monotonic() < deadline:  # the new topic's leader takes a moment
            try:
                cluster.watermarks(STATE_TOPIC, [0])
                return
            except ReplayError:
                time.sleep(0.2)


def run_key(kind: str, group: str, topic: str, share: str | None = None) -> str:
    """Where a run's progress is kept; each share of a copy split by ``--partitions``
    (several copiers, e.g. on several machines) has its own."""
    return f"run/{kind}/{group}/{topic}" + (f"/partitions={share}" if share else "")


def undo_key(group: str) -> str:
    return f"undo/{group}"




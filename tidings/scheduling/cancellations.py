"""Which schedule ids are cancelled, read from the compacted cancellations topic.

Every scheduler instance reads all of it (it is small: one record per cancelled
schedule, kept until ``max_delay`` has passed) and consults it before an event hops or
is delivered. A cancellation applies to what was scheduled under that id before it,
so the id can be used again afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from tidings.kafka_clients import with_logger
from tidings.scheduling.envelope import cancelled_at


class CancellationIndex:
    """schedule id -> when it was cancelled, for every cancellation on the topic."""

    def __init__(self, kafka_config: Mapping[str, Any], topic: str, *,
                 keep_ms: int, clock: Callable[[], float]) -> None:
        self.topic = topic
        self.keep_ms = keep_ms
        self.clock = clock
        self.cancelled: dict[str, int] = {}
        self._consumer = Consumer(with_logger({
            **kafka_config,
            "group.id": f"{topic}.reader.{uuid.uuid4().hex[:8]}",  # never joins
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }))
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = sorted(metadata.partitions)
        self._behind = set(partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self._last_prune = 0.0

    @property
    def caught_up(self) -> bool:
        """True once every partition has been read to its end at least once."""
        return not self._behind

    def poll(self, budget: int = 5000) -> int:
        """Read what arrived (without waiting); returns how many records were read."""
        read = 0
        while read < budget:
            messages = self._consumer.consume(500, timeout=0)
            if not messages:
                break
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._behind.discard(message.partition() or 0)
                    continue
                read += 1
                key = (message.key() or b"").decode("utf-8", "replace")
                when = cancelled_at(message.value())
                if when is None:
                    self.cancelled.pop(key, None)  # a tombstone: forgotten
                else:
                    self.cancelled[key] = max(when, self.cancelled.get(key, 0))
        if self.clock() - self._last_prune > 600:
            self.prune()
        return read

    def is_cancelled(self, schedule_id: str, scheduled_at: int) -> bool:
        when = self.cancelled.get(schedule_id)
        return when is not None and when >= scheduled_at

    def prune(self) -> None:
        """Forget cancellations older than anything could still be scheduled for."""
        now = self.clock()
        self._last_prune = now
        oldest = int(now * 1000) - self.keep_ms
        for key in [k for k, when in self.cancelled.items() if when < oldest]:
            del self.cancelled[key]

    def close(self) -> None:
        self._consumer.close()

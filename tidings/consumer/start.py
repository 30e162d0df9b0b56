"""Where a consumer group without committed offsets starts: its ``start_from``.

``earliest`` is Kafka's ``auto.offset.reset`` and needs nothing here. For ``latest`` or
a moment, the main-topic partitions the group has no offset for are resolved to an
offset when they are first assigned, and that offset is committed at once: the start
is then fixed, so a member that restarts before it has processed anything does not
start later than the first one did (and skip what was published in between). Retry
and replay topics always start at their beginning: every record in them was written
for this group.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, TopicPartition

from tidings.topology.model import parse_start_from

log = logging.getLogger("tidings.consumer")

_NO_OFFSET = 0  # offsets below this are librdkafka's "none" markers (-1001 etc.)


def pin_start_positions(consumer: Consumer, group: str, start_from: str,
                        partitions: list[TopicPartition], main_topics: frozenset[str],
                        timeout: float = 10.0) -> list[TopicPartition]:
    """``partitions`` with a start offset set where the group had none (main topics
    only), after committing those offsets; unchanged for ``earliest``."""
    if start_from == "earliest":
        return partitions
    mains = [TopicPartition(p.topic, p.partition) for p in partitions if p.topic in main_topics]
    if not mains:
        return partitions
    committed = consumer.committed(mains, timeout=timeout)
    fresh = [TopicPartition(c.topic, c.partition) for c in committed if c.offset < _NO_OFFSET]
    if not fresh:
        return partitions
    moment = parse_start_from(start_from)
    pinned: dict[tuple[str, int], int] = {}
    if moment is None:  # latest
        for tp in fresh:
            _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            pinned[(tp.topic, tp.partition)] = high
    else:
        found = consumer.offsets_for_times(
            [TopicPartition(tp.topic, tp.partition, moment) for tp in fresh], timeout=timeout)
        for tp in found:
            offset = tp.offset
            if offset < _NO_OFFSET:  # nothing that recent: start at the end
                _, offset = consumer.get_watermark_offsets(tp, timeout=timeout)
            pinned[(tp.topic, tp.partition)] = offset
    consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in pinned.items()],
                    asynchronous=False)
    log.info("%s: no committed offsets on %d partition(s); starting from %s (pinned: %s)",
             group, len(pinned), start_from,
             ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(pinned.items())))
    return [TopicPartition(p.topic, p.partition, pinned.get((p.topic, p.partition), p.offset))
            for p in partitions]

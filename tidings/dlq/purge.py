"""``dlq purge``: drop dead letters an operator decided against, before a time.

Kafka deletes only a prefix of a partition (``DeleteRecords``), so a purge removes,
per partition, everything before the first record dead-lettered at or after the
given time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tidings.dlq.letters import dlq_topics
from tidings.replay.cluster import Cluster
from tidings.replay.ranges import parse_bound
from tidings.topology import Topology


@dataclass(frozen=True)
class PurgePlan:
    """Per DLQ partition: delete ``[low, before)``."""

    group: str
    before_text: str
    cuts: dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (low, before)

    @property
    def count(self) -> int:
        return sum(before - low for low, before in self.cuts.values())

    def render(self) -> str:
        """The plan as the CLI prints it."""
        lines = [f"Purge dead letters of group {self.group} before {self.before_text}:"]
        for (topic, partition), (low, before) in sorted(self.cuts.items()):
            if before > low:
                lines.append(f"  {topic}[{partition}]: offsets [{low}, {before}) "
                             f"({before - low} events)")
        lines.append(f"  total: {self.count} dead letter(s)")
        return "\n".join(lines)


def plan_purge(topology: Topology, group: str, before: str, *,
               cluster: Cluster | None = None, now: datetime | None = None) -> PurgePlan:
    """Which dead letters ``before`` (a time or ``-duration``) covers; changes nothing."""
    bound = parse_bound(before, "--before", now=now or datetime.now(UTC))
    if bound.timestamp_ms is None:
        from tidings.replay.cluster import ReplayError

        raise ReplayError(f"--before {before!r}: give a time (2026-03-14T15:00Z) or a "
                          "duration before now (-2d)")
    cluster = cluster or Cluster(topology)
    cuts: dict[tuple[str, int], tuple[int, int]] = {}
    for _, dlq in dlq_topics(topology, group):
        partitions = cluster.partitions(dlq)
        marks = cluster.watermarks(dlq, partitions)
        first_after = cluster.offsets_for_time(dlq, partitions, bound.timestamp_ms)
        for p in partitions:
            low, high = marks[p]
            cut = first_after[p] if first_after[p] >= 0 else high
            cuts[(dlq, p)] = (low, max(low, min(cut, high)))
    return PurgePlan(group, bound.describe(), cuts)


def execute_purge(plan: PurgePlan, topology: Topology, *,
                  cluster: Cluster | None = None) -> int:
    """Delete the plan's dead letters; returns how many."""
    cluster = cluster or Cluster(topology)
    by_topic: dict[str, dict[int, int]] = {}
    for (topic, partition), (low, before) in plan.cuts.items():
        if before > low:
            by_topic.setdefault(topic, {})[partition] = before
    for topic, offsets in by_topic.items():
        cluster.delete_before(topic, offsets)
    return plan.count

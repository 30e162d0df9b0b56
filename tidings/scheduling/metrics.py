"""Prometheus metrics of the scheduler (served on /metrics with /healthz)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from tidings.consumer.metrics import HealthState

#: How late an event is delivered, seconds: a tier is never longer than the time left,
#: so normal lateness is well under a second; hours mean the scheduler was down.
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400)


class SchedulerMetrics:
    """What the scheduler did, and how many events wait."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter("tidings_scheduler_received_total",
                                "Scheduled events read from the intake topic", ["event_type"],
                                registry=r)
        self.dispatched = Counter("tidings_scheduler_dispatched_total",
                                  "Scheduled events delivered to their topic", ["event_type"],
                                  registry=r)
        self.lateness = Histogram("tidings_scheduler_lateness_seconds",
                                  "How long after its due time an event was delivered",
                                  ["event_type"], buckets=LATENESS_BUCKETS, registry=r)
        self.hops = Counter("tidings_scheduler_hops_total",
                            "Moves of a waiting event to a waiting tier", ["tier"], registry=r)
        self.cancelled = Counter("tidings_scheduler_cancelled_total",
                                 "Scheduled events dropped because they were cancelled",
                                 ["event_type"], registry=r)
        self.invalid = Counter("tidings_scheduler_invalid_total",
                               "Messages on a scheduling topic that are not scheduled events "
                               "(dropped, logged)", registry=r)
        self.ticks = Counter("tidings_scheduler_ticks_total",
                             "Ticks of recurring schedules emitted", ["schedule"], registry=r)
        self.ticks_skipped = Counter("tidings_scheduler_ticks_skipped_total",
                                     "Missed ticks skipped per the schedule's catch_up",
                                     ["schedule"], registry=r)
        self.waiting = Gauge("tidings_scheduler_waiting",
                             "Scheduled events waiting, per scheduling topic (offsets not yet "
                             "dispatched; Kafka transaction markers can add a few)",
                             ["topic"], registry=r)
        self.held = Gauge("tidings_scheduler_held_partitions",
                          "Partitions paused until their head event is due", registry=r)
        self.transactions = Counter("tidings_scheduler_transactions_total",
                                    "Kafka transactions committed (consume-produce-commit)",
                                    registry=r)
        self.aborted = Counter("tidings_scheduler_transactions_aborted_total",
                               "Kafka transactions aborted and retried", registry=r)

    def watch(self, health: HealthState) -> None:
        """Export how long since the scheduler's loop last turned (read at scrape)."""
        if getattr(self, "_watched", False):
            return
        self._watched = True
        Gauge("tidings_scheduler_loop_age_seconds", "Seconds since the scheduler's loop "
              "last turned", registry=self.registry).set_function(
            lambda: time.monotonic() - health.last_poll)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def total(self, name: str) -> float:
        """The sum of a counter over all its labels."""
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name:
                    total += sample.value
        return total

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

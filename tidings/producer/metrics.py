"""Prometheus metrics of a producer: what it published, what failed, how long the broker
took, and what waits in its outbox.

Counted once per batch (a ``publish`` is a batch of one), not with a lock per event: a
batch's events are added up by event type and topic first, and the batch's time, from
its first send to its last acknowledgement, is observed once for all of its events.
"""

from __future__ import annotations

import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

#: Send-to-acknowledgement buckets, seconds (linger.ms is 5 ms; acks=all adds a round trip).
PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def error_label(error: BaseException | None) -> str:
    """A failure's ``error`` label: the Kafka error's name (``msg_timed_out``,
    ``unknown_topic_or_part``, ...), or ``no_report`` when the broker never answered."""
    if error is None:
        return "no_report"
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return code.strip("_").lower()
    return type(error).__name__


class _BatchHistogram(Collector):
    """A histogram that takes ``n`` observations of one value under one lock."""

    def __init__(self, name: str, doc: str, producer: str) -> None:
        self.name, self.doc, self.producer = name, doc, producer
        self._cells = [0.0] * (len(PUBLISH_BUCKETS) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float, n: int = 1) -> None:
        index = bisect_left(PUBLISH_BUCKETS, seconds)
        with self._lock:
            self._cells[index] += n
            self._sum += seconds * n

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cells, total = list(self._cells), self._sum
        family = HistogramMetricFamily(self.name, self.doc, labels=["producer"])
        cumulative, buckets = 0.0, []
        for bound, value in zip((*PUBLISH_BUCKETS, float("inf")), cells, strict=True):
            cumulative += value
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        family.add_metric([self.producer], buckets, sum_value=total)
        yield family


class ProducerMetrics:
    """The metrics of one producer service (a Publisher, an outbox relay), in
    ``registry``; several publishers of one service may share it."""

    def __init__(self, producer: str, registry: CollectorRegistry) -> None:
        self.producer = producer
        self.registry = registry
        shared = _shared(registry)
        self.published = shared["published"]
        self.failures = shared["failures"]
        self.seconds: _BatchHistogram = shared.setdefault(f"seconds:{producer}", _register(
            registry, _BatchHistogram("tidings_publish_seconds",
                                      "Seconds from send to the broker's acknowledgement "
                                      "(a batch's events: the batch's time)", producer)))

    def record(self, delivered: Iterable[tuple[str, str]], failed: Iterable[BaseException | None],
               seconds: float) -> None:
        """One batch: the (event type, topic) of each delivered event, the error of each
        failed one, and the batch's send-to-acknowledgement time."""
        counts: dict[tuple[str, str], int] = {}
        for key in delivered:
            counts[key] = counts.get(key, 0) + 1
        for (event_type, topic), n in counts.items():
            self.published.labels(self.producer, event_type, topic).inc(n)
        errors: dict[str, int] = {}
        for error in failed:
            label = error_label(error)
            errors[label] = errors.get(label, 0) + 1
        for label, n in errors.items():
            self.failures.labels(self.producer, label).inc(n)
        total = sum(counts.values()) + sum(errors.values())
        if total:
            self.seconds.observe(seconds, total)

    def watch_outbox(self) -> OutboxGauges:
        """The gauges of this producer's outbox (one per producer and registry)."""
        shared = _shared(self.registry)
        gauges = shared.get(f"outbox:{self.producer}")
        if gauges is None:
            gauges = shared[f"outbox:{self.producer}"] = OutboxGauges(self, shared)
        return gauges


class OutboxGauges:
    """``tidings_outbox_pending`` and ``tidings_outbox_oldest_pending_seconds``, as the
    relay last read them (the age is computed at scrape time, so it grows while the relay
    is stuck)."""

    def __init__(self, metrics: ProducerMetrics, shared: dict[str, Any]) -> None:
        self._oldest_ms: int | None = None
        shared["pending"].labels(metrics.producer).set(0)
        shared["oldest"].labels(metrics.producer).set_function(self._age)
        self._pending = shared["pending"].labels(metrics.producer)

    def set(self, pending: int, oldest_pending_ms: int | None) -> None:
        self._pending.set(pending)
        self._oldest_ms = oldest_pending_ms if pending else None

    def _age(self) -> float:
        oldest = self._oldest_ms
        return 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)


#: The families made in each registry (a registry refuses a second family of one name).
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = \
    weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _register(registry: CollectorRegistry, collector: Collector) -> Collector:
    registry.register(collector)
    return collector


def _shared(registry: CollectorRegistry) -> dict[str, Any]:
    """The families of one registry, made once however many producers use it."""
    with _LOCK:
        shared = _BY_REGISTRY.get(registry)
        if shared is None:
            shared = _BY_REGISTRY[registry] = {
                "published": Counter("tidings_events_published",
                                     "Events the broker acknowledged, per producer service",
                                     ["producer", "event_type", "topic"], registry=registry),
                "failures": Counter("tidings_publish_failures",
                                    "Events the broker did not acknowledge (the publish "
                                    "raised, or the outbox row stays pending)",
                                    ["producer", "error"], registry=registry),
                "pending": Gauge("tidings_outbox_pending",
                                 "Outbox rows not yet relayed", ["producer"],
                                 registry=registry),
                "oldest": Gauge("tidings_outbox_oldest_pending_seconds",
                                "Age of the oldest outbox row not yet relayed (0: none)",
                                ["producer"], registry=registry),
            }
        return shared

"""Prometheus metrics of one consumer service, and its /metrics and /healthz endpoint."""

from __future__ import annotations

import contextlib
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

#: Handler latency buckets, seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                   5, 10)

#: The counters every event touches, counted per worker thread without a lock and summed
#: when /metrics is scraped (a prometheus-client ``inc()`` per event cost more than the
#: rest of the runtime's per-event work). Name -> help.
HOT_COUNTERS = {
    "tidings_events_consumed_total": "Events fetched from Kafka (including retries and replays)",
    "tidings_events_processed_total": "Events whose handler succeeded and whose effects "
                                      "committed",
    "tidings_events_duplicates_skipped_total": "Events skipped because this group already "
                                               "applied them",
    "tidings_events_ignored_total": "Events on a subscribed topic of a type this group ignores",
}
CONSUMED, PROCESSED, DUPLICATES, IGNORED = HOT_COUNTERS


class WorkerStats:
    """One worker thread's counts and handler latencies. Only its own thread writes;
    the scrape reads copies (a dict copy is atomic under the GIL)."""

    __slots__ = ("counts", "latency")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}  # (counter name, event type) -> n
        #: event type -> [count per bucket (last: +Inf)..., sum of seconds, count]
        self.latency: dict[str, list[float]] = {}

    def add(self, name: str, event_type: str, n: int = 1) -> None:
        key = (name, event_type)
        self.counts[key] = self.counts.get(key, 0) + n

    def observe(self, event_type: str, seconds: float, n: int = 1) -> None:
        """``n`` handler runs of ``seconds`` each."""
        cells = self.latency.get(event_type)
        if cells is None:
            cells = self.latency[event_type] = [0.0] * (len(LATENCY_BUCKETS) + 3)
        cells[bisect_left(LATENCY_BUCKETS, seconds)] += n
        cells[-2] += seconds * n
        cells[-1] += n


def _bound_text(bound: float) -> str:
    """A bucket bound as Prometheus writes ``le`` (``+Inf``, ``0.005``, ``1.0``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class _HotCollector(Collector):
    def __init__(self, metrics: ConsumerMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # nothing to register up front; series appear once they count

    def collect(self) -> Iterator[Metric]:
        group = self.metrics.group
        counts: dict[tuple[str, str], int] = {}
        latency: dict[str, list[float]] = {}
        for stats in list(self.metrics.workers):
            for key, n in stats.counts.copy().items():
                counts[key] = counts.get(key, 0) + n
            for event_type, cells in stats.latency.copy().items():
                total = latency.setdefault(event_type, [0.0] * len(cells))
                for index, value in enumerate(list(cells)):
                    total[index] += value
        for name, doc in HOT_COUNTERS.items():
            family = CounterMetricFamily(name.removesuffix("_total"), doc,
                                         labels=["group", "event_type"])
            for (metric, event_type), n in sorted(counts.items()):
                if metric == name:
                    family.add_metric([group, event_type], n)
            yield family
        histogram = HistogramMetricFamily("tidings_handler_seconds",
                                          "Handler run time, including its transaction",
                                          labels=["group", "event_type"])
        for event_type, cells in sorted(latency.items()):
            cumulative, buckets = 0.0, []
            for bound, value in zip((*LATENCY_BUCKETS, float("inf")), cells, strict=False):
                cumulative += value
                buckets.append((_bound_text(bound), cumulative))
            histogram.add_metric([group, event_type], buckets, sum_value=cells[-2])
        yield histogram


class ConsumerMetrics:
    """Counters per group and event type, handler latency, lag and in-flight events."""

    def __init__(self, group: str, registry: CollectorRegistry | None = None) -> None:
        self.group = group
        self.registry = registry or CollectorRegistry()
        #: One per worker thread (see :class:`WorkerStats`), plus one for the poll loop.
        self.workers: list[WorkerStats] = []
        labels = ["group", "event_type"]

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*labels, *extra], registry=self.registry)

        # Rare events keep prometheus-client's own counters.
        self.retried = counter("tidings_events_retried_total",
                               "Events sent to a retry tier after a handler error", ("tier",))
        self.dead_lettered = counter("tidings_events_dead_lettered_total",
                                     "Events sent to the dead-letter topic", ("error_class",))
        self.lag = Gauge("tidings_consumer_lag", "High watermark minus committed position",
                         ["group", "topic", "partition"], registry=self.registry)
        self.in_flight = Gauge("tidings_events_in_flight", "Events handed out, not finished",
                               ["group"], registry=self.registry)
        self.members = Gauge("tidings_group_members",
                             "Members the broker lists in this consumer group (as this "
                             "instance last saw it; 0: the group is empty)",
                             ["group"], registry=self.registry)
        self._health_watched = False
        self.registry.register(_HotCollector(self))

    def watch(self, health: HealthState) -> None:
        """Export ``health`` as gauges read at scrape time: how long the oldest in-flight
        event has been in its handler, and how long since the poll loop last turned."""
        if self._health_watched:
            return
        self._health_watched = True
        Gauge("tidings_handler_oldest_seconds",
              "Seconds the oldest in-flight event has been in its handler (0: none)",
              ["group"], registry=self.registry).labels(self.group).set_function(
            lambda: health.oldest_age())
        Gauge("tidings_poll_age_seconds", "Seconds since the poll loop last turned",
              ["group"], registry=self.registry).labels(self.group).set_function(
            lambda: time.monotonic() - health.last_poll)

    def worker_stats(self) -> WorkerStats:
        """A new :class:`WorkerStats` for one thread, included in every scrape."""
        stats = WorkerStats()
        self.workers.append(stats)
        return stats

    def value(self, name: str, **labels: str) -> float:
        """The current value of one series (0 when it has counted nothing yet)."""
        found = self.registry.get_sample_value(name, {"group": self.group, **labels})
        return found or 0.0

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class HealthState:
    """Liveness of the poll loop: unhealthy when it stopped turning or work is stuck."""

    def __init__(self, stuck_after: float = 120.0) -> None:
        self.stuck_after = stuck_after
        self.last_poll = time.monotonic()
        self.oldest_in_flight: Callable[[], float | None] = lambda: None
        self.started = False

    def polled(self) -> None:
        self.last_poll = time.monotonic()

    def oldest_age(self) -> float:
        """Seconds the oldest in-flight event has been in its handler (0 when none is)."""
        oldest = self.oldest_in_flight()
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    def problems(self) -> list[str]:
        now = time.monotonic()
        found = []
        if not self.started:
            found.append("not started")
        if now - self.last_poll > self.stuck_after:
            found.append(f"poll loop silent for {now - self.last_poll:.0f}s")
        oldest = self.oldest_in_flight()
        if oldest is not None and now - oldest > self.stuck_after:
            found.append(f"an event has been in its handler for {now - oldest:.0f}s")
        return found


class Renders(Protocol):
    """Metrics a service serves (consumer or scheduler): their text, and the health
    gauges they export."""

    def render(self) -> bytes: ...

    def watch(self, health: HealthState) -> None: ...


def serve_metrics(metrics: Renders, health: HealthState, port: int,
                  host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` on ``port`` (0 picks a free one) in a thread."""
    metrics.watch(health)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._reply(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                problems = health.problems()
                body = ("ok\n" if not problems else "\n".join(problems) + "\n").encode()
                self._reply(503 if problems else 200, body, "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found\n", "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the service's own log

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="tidings-metrics", daemon=True).start()
    return server


#: How long one description of the group may wait for its coordinator. librdkafka
#: aborts the whole process (``rd_kafka_enq_once_del_source_return: Assertion
#: eonce->refcnt > 0``, librdkafka#4605, still open in 2.16) when a DescribeConsumerGroups
#: times out while waiting for a coordinator broker that is down and the broker later
#: changes state: found by tests/chaos, killing the coordinator with kill -9. So the
#: request is given far longer than any failover takes, and at most one is outstanding.
DESCRIBE_GROUP_TIMEOUT_S = 600.0


def record_members(metrics: ConsumerMetrics, admin: Any, timeout: float = 5.0) -> None:
    """Set ``tidings_group_members`` from the broker's description of the group (an
    AdminClient ``describe_consumer_groups``), waiting ``timeout`` seconds for it; a
    description still pending is not asked again, and sets the gauge when it comes.
    The gauge stays as it was while the broker does not answer, since lag and
    membership are informational."""
    pending = getattr(metrics, "_describing", None)
    if pending is not None and not pending.done():
        return
    try:
        future = admin.describe_consumer_groups(
            [metrics.group], request_timeout=DESCRIBE_GROUP_TIMEOUT_S)[metrics.group]
    except Exception:  # the broker being away must never stop consuming
        return
    metrics._describing = future  # type: ignore[attr-defined]

    def record(done: Any) -> None:
        with contextlib.suppress(Exception):
            metrics.members.labels(metrics.group).set(len(done.result().members or []))

    future.add_done_callback(record)
    with contextlib.suppress(Exception):
        future.result(timeout=timeout)

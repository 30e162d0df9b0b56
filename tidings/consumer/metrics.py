"""Prometheus metrics of one consumer service, and its /metrics and /healthz endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class ConsumerMetrics:
    """Counters per group and event type, handler latency, lag and in-flight events."""

    def __init__(self, group: str, registry: CollectorRegistry | None = None) -> None:
        self.group = group
        self.registry = registry or CollectorRegistry()
        labels = ["group", "event_type"]

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*labels, *extra], registry=self.registry)

        self.consumed = counter("tidings_events_consumed_total",
                                "Events fetched from Kafka (including retries and replays)")
        self.processed = counter("tidings_events_processed_total",
                                 "Events whose handler succeeded and whose effects committed")
        self.duplicates = counter("tidings_events_duplicates_skipped_total",
                                  "Events skipped because this group already applied them")
        self.retried = counter("tidings_events_retried_total",
                               "Events sent to a retry tier after a handler error", ("tier",))
        self.dead_lettered = counter("tidings_events_dead_lettered_total",
                                     "Events sent to the dead-letter topic", ("error_class",))
        self.ignored = counter("tidings_events_ignored_total",
                               "Events on a subscribed topic of a type this group ignores")
        self.handler_seconds = Histogram(
            "tidings_handler_seconds", "Handler run time, including its transaction", labels,
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                     5, 10),
        )
        self.lag = Gauge("tidings_consumer_lag", "High watermark minus committed position",
                         ["group", "topic", "partition"], registry=self.registry)
        self.in_flight = Gauge("tidings_events_in_flight", "Events handed out, not finished",
                               ["group"], registry=self.registry)
        self.members = Gauge("tidings_group_members",
                             "Members the broker lists in this consumer group (as this "
                             "instance last saw it; 0: the group is empty)",
                             ["group"], registry=self.registry)
        self._health_watched = False

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


def serve_metrics(metrics: ConsumerMetrics, health: HealthState, port: int,
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


def record_members(metrics: ConsumerMetrics, admin: Any, timeout: float = 5.0) -> None:
    """Set ``tidings_group_members`` from the broker's description of the group (an
    AdminClient ``describe_consumer_groups``); leaves it as it was when the broker does
    not answer, since lag and membership are informational."""
    try:
        future = admin.describe_consumer_groups([metrics.group], request_timeout=timeout)
        description = future[metrics.group].result(timeout=timeout)
    except Exception:  # the broker being away must never stop consuming
        return
    metrics.members.labels(metrics.group).set(len(description.members or []))

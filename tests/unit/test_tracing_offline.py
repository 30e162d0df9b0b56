"""Tracing without a broker: nothing happens without an SDK, copies get a trace of their
own, and the standard OTEL_* variables configure exporting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import LineItem, OrderCreated
from tidings import tracing
from tidings.consumer.retry import FailureRoute, RouteKind, failure_headers
from tidings.producer.prepare import EventPreparer
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")
ORIGINAL = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def an_order() -> OrderCreated:
    from datetime import UTC, datetime
    return OrderCreated(order_id="o-1", customer_id="c-1", customer_email="a@example.com",
                        currency="EUR", items=[LineItem(sku="S", quantity=1,
                                                        unit_price_cents=100)],
                        total_cents=100, created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_without_an_sdk_nothing_is_traced_and_no_span_is_made() -> None:
    assert not tracing.active()
    preparer = EventPreparer(load_topology(REPO / "topology.yaml", check_imports=False),
                             "order-service")
    assert preparer.traced is False
    prepared = preparer.prepare(an_order())
    assert prepared.span is None
    assert TRACEPARENT.fullmatch(dict(prepared.headers)["traceparent"].decode())

    def handle(event: object, ctx: object) -> None: ...
    # The runtime calls the handler itself: not even a wrapper.
    assert tracing.traced_handler(handle, "inventory", batch=False) is handle


def test_traceparent_is_parsed_as_w3c_says() -> None:
    context = tracing.parse_traceparent(ORIGINAL)
    assert context is not None and context.is_remote and context.trace_flags.sampled
    assert tracing.format_traceparent(context) == ORIGINAL
    for bad in (None, "", "00-abc-def-01", "00-" + "0" * 32 + "-b7ad6b7169203331-01",
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
                "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01"):
        assert tracing.parse_traceparent(bad) is None, bad


def test_a_retry_copy_has_a_new_trace_and_keeps_the_first_one() -> None:
    route = FailureRoute(RouteKind.RETRY, "orders.inventory.retry.10s", next_attempt=2,
                         not_before_ms=1, tier="10s")
    once = dict(failure_headers({"event-id": "e-1", "traceparent": ORIGINAL}, route=route,
                                topic="orders", partition=0, offset=5,
                                error=RuntimeError("x")))
    assert once["original-traceparent"] == ORIGINAL.encode()
    assert TRACEPARENT.fullmatch(once["traceparent"].decode())
    assert once["traceparent"] != ORIGINAL.encode()
    dead = FailureRoute(RouteKind.DEAD_LETTER, "orders.inventory.dlq", next_attempt=2)
    twice = dict(failure_headers({k: v.decode() for k, v in once.items()}, route=dead,
                                 topic="orders.inventory.retry.10s", partition=0, offset=1,
                                 error=RuntimeError("y")))
    assert twice["original-traceparent"] == ORIGINAL.encode(), "the first trace stays"
    assert twice["traceparent"] not in (once["traceparent"], ORIGINAL.encode())


def test_a_replay_copy_has_a_new_trace_linked_to_the_original() -> None:
    raw = [("event-id", b"e-1"), ("traceparent", ORIGINAL.encode()), ("attempt", b"1")]
    copy = tracing.copied(raw, "orders.analytics.replay")
    names = [name for name, _ in copy]
    assert names.count("traceparent") == 1 and names.count("original-traceparent") == 1
    headers = dict(copy)
    assert headers["original-traceparent"] == ORIGINAL.encode()
    assert headers["traceparent"] != ORIGINAL.encode()
    assert headers["event-id"] == b"e-1" and headers["attempt"] == b"1"
    again = dict(tracing.copied(copy, "orders.analytics.replay"))
    assert again["original-traceparent"] == ORIGINAL.encode()
    # A record without any trace context gets one, and names no original.
    assert "original-traceparent" not in dict(tracing.copied([("event-id", b"e")], "t"))


def run_configured(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A process that calls configure_from_environment and ends one publish span."""
    script = (
        "from tidings import tracing\n"
        "print('configured', tracing.configure_from_environment('inventory'), flush=True)\n"
        "span, parent = tracing.start_publish('inventory', 'orders', 'order.created', None)\n"
        "tracing.end_publish(span, 'e-1')\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-c", script], env={**clean, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_otel_variables_configure_exporting() -> None:
    result = run_configured({"OTEL_TRACES_EXPORTER": "console"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configured True")
    span = json.loads(result.stdout[result.stdout.index("{"):])
    assert span["name"] == "orders publish" and span["kind"] == "SpanKind.PRODUCER"
    assert span["attributes"]["messaging.message.id"] == "e-1"
    assert span["resource"]["attributes"]["service.name"] == "inventory"

    named = run_configured({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "stock"})
    assert json.loads(named.stdout[named.stdout.index("{"):])[
        "resource"]["attributes"]["service.name"] == "stock"


@pytest.mark.parametrize("env", [{}, {"OTEL_TRACES_EXPORTER": "none"},
                                 {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}])
def test_without_exporting_asked_for_nothing_is_configured(env: dict[str, str]) -> None:
    result = run_configured(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configured False\n"


def test_an_exporter_that_is_not_installed_is_named() -> None:
    from importlib.metadata import entry_points
    if entry_points(group="opentelemetry_traces_exporter", name="otlp_proto_http"):
        pytest.skip("the OTLP/HTTP exporter is installed here")
    result = run_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                             "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert result.returncode != 0
    assert "pip install opentelemetry-exporter-otlp-proto-http" in result.stderr

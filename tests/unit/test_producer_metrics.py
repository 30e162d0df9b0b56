"""Producer metrics without a broker: counted per batch, shared per registry, and a
publish that no broker acknowledges is counted as a failure with Kafka's error."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from schemas import LineItem, OrderCreated
from tidings.producer.metrics import ProducerMetrics, error_label
from tidings.producer.publisher import DeliveryFailed, Publisher
from tidings.producer.reliable import DeliveryFailed as Failed
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_batch_is_counted_by_event_type_and_topic() -> None:
    registry = CollectorRegistry()
    metrics = ProducerMetrics("order-service", registry)
    timed_out = Failed("event e-3 was not delivered")
    timed_out.code = "_MSG_TIMED_OUT"
    metrics.record([("order.created", "orders")] * 3 + [("order.cancelled", "orders")],
                   [timed_out, None], 0.02)
    labels = {"producer": "order-service", "topic": "orders"}
    assert sample(registry, "tidings_events_published_total", event_type="order.created",
                  **labels) == 3
    assert sample(registry, "tidings_events_published_total", event_type="order.cancelled",
                  **labels) == 1
    assert sample(registry, "tidings_publish_failures_total", producer="order-service",
                  error="msg_timed_out") == 1
    assert sample(registry, "tidings_publish_failures_total", producer="order-service",
                  error="no_report") == 1
    # Six events at the batch's time: in the 25 ms bucket, not the 10 ms one.
    assert sample(registry, "tidings_publish_seconds_count", producer="order-service") == 6
    assert sample(registry, "tidings_publish_seconds_bucket", producer="order-service",
                  le="0.01") == 0
    assert sample(registry, "tidings_publish_seconds_bucket", producer="order-service",
                  le="0.025") == 6
    assert sample(registry, "tidings_publish_seconds_sum",
                  producer="order-service") == pytest.approx(0.12)


def test_producers_share_a_registry_and_the_outbox_age_grows_while_rows_wait() -> None:
    registry = CollectorRegistry()
    ProducerMetrics("order-service", registry).record([("order.created", "orders")], [], 0.01)
    inventory = ProducerMetrics("inventory", registry)
    inventory.record([("inventory.reserved", "inventory")], [], 0.01)
    gauges = inventory.watch_outbox()
    assert inventory.watch_outbox() is gauges
    assert sample(registry, "tidings_outbox_pending", producer="inventory") == 0
    assert sample(registry, "tidings_outbox_oldest_pending_seconds", producer="inventory") == 0
    gauges.set(7, int(time.time() * 1000) - 90_000)
    assert sample(registry, "tidings_outbox_pending", producer="inventory") == 7
    assert 90 <= sample(registry, "tidings_outbox_oldest_pending_seconds",
                        producer="inventory") < 120
    text = generate_latest(registry).decode()
    assert 'tidings_events_published_total{event_type="order.created",producer="order-service"' \
        in text and 'producer="inventory"' in text


def test_a_publish_no_broker_acknowledges_is_a_failure() -> None:
    assert error_label(None) == "no_report"
    registry = CollectorRegistry()
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    order = OrderCreated(order_id="o-1", customer_id="c", customer_email="a@example.com",
                         currency="EUR", items=[LineItem(sku="S", quantity=1,
                                                         unit_price_cents=1)],
                         total_cents=1, created_at=datetime.now(UTC))
    publisher = Publisher(topology, "order-service", registry=registry, delivery_timeout=1,
                          producer_config={"bootstrap.servers": "127.0.0.1:9"})
    try:
        with pytest.raises(DeliveryFailed, match="not delivered"):
            publisher.publish(order)
        with pytest.raises(Exception, match="1 of 1 events were not delivered"):
            publisher.publish_many([order])
    finally:
        publisher.close()  # both failed: nothing left to flush
    deadline = time.monotonic() + 10
    while sample(registry, "tidings_publish_failures_total", producer="order-service",
                 error="msg_timed_out") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the single publish is counted by its future's callback
    assert sample(registry, "tidings_publish_failures_total", producer="order-service",
                  error="msg_timed_out") == 2
    assert sample(registry, "tidings_events_published_total", producer="order-service",
                  event_type="order.created", topic="orders") == 0

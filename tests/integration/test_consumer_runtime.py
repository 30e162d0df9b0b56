"""The consumer runtime against a real broker: retries, DLQ, poison, dedup, metrics."""

from __future__ import annotations

import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from runtime_support import make_group, running
from shop_support import an_order, eventually, headers_of, read_all

from schemas import LineItem
from tidings.producer.publisher import Publisher

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _bootstrap(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)


def publish(group, *orders):  # type: ignore[no-untyped-def]
    with Publisher(group.topology, "order-service") as publisher:
        return publisher.publish_many(orders)


def test_a_handler_failing_twice_succeeds_once_after_both_tier_delays(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    order = an_order(customer_id="fail-twice")
    with running(group.runtime()) as runtime:
        began_ms = time.time() * 1000
        publish(group, order)
        (effect,) = eventually(group.effects, 30, "the event to succeed on its third attempt")
        time.sleep(1)  # any stray extra delivery would show up now
        assert len(group.effects()) == 1
    _, order_id, _, attempt, _, done_at_ms = effect
    assert order_id == order.order_id
    assert attempt == 3
    assert done_at_ms - began_ms >= 1_000 + 2_000, "waited the 1s and the 2s tier"
    value, created = runtime.metrics.value, "order.created"
    assert value("tidings_events_retried_total", event_type=created, tier="1s") == 1
    assert value("tidings_events_retried_total", event_type=created, tier="2s") == 1
    assert value("tidings_events_processed_total", event_type=created) == 1


def test_an_always_failing_event_lands_in_the_dlq_with_every_header(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    group = make_group(tmp_path)
    order = an_order(customer_id="fail-always")
    with running(group.runtime()):
        (delivery,) = publish(group, order)
        (dead,) = read_all(kafka_bootstrap, f"{group.topic}.{group.name}.dlq", expect=1,
                           timeout=30)
    headers = headers_of(dead)
    assert dead.key() == order.order_id.encode()
    assert headers["event-id"] == delivery.event_id
    assert headers["event-type"] == "order.created"
    for name in ("schema", "occurred-at", "producer", "traceparent", "failed-at"):
        assert headers[name], name
    assert headers["attempt"] == "3", "three attempts were made: first try and two tiers"
    assert headers["original-topic"] == group.topic
    assert headers["original-partition"] == str(delivery.partition)
    assert headers["original-offset"] == str(delivery.offset)
    assert headers["error-class"] == "RuntimeError"
    assert headers["error-message"] == "always broken"
    assert "not-before" not in headers
    assert group.effects() == []


def test_poison_goes_to_the_dlq_at_once_while_the_partition_keeps_flowing(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    group = make_group(tmp_path)
    key = str(uuid.uuid4())
    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    raw.produce(group.topic, key=key.encode(), value=b"\xc3\x01not-avro-at-all")
    raw.produce(group.topic, key=key.encode(), value=b"garbage", headers=[("event-id", "p2")])
    raw.flush(10)
    with running(group.runtime()):
        began = time.monotonic()
        dead = read_all(kafka_bootstrap, f"{group.topic}.{group.name}.dlq", expect=2,
                        timeout=30)
        assert time.monotonic() - began < 15
        publish(group, an_order(order_id=key), an_order(order_id=key))
        eventually(lambda: len(group.effects()) == 2, 30, "later events of that key")
    classes = {headers_of(m)["error-class"] for m in dead}
    assert classes == {"tidings.consumer.processing.UndecodableEvent"}
    assert headers_of(dead[1])["attempt"] == "1"


def test_later_events_are_not_blocked_by_one_waiting_for_a_retry(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    key = str(uuid.uuid4())
    slow = an_order(order_id=key, customer_id="fail-twice")
    followers = [an_order(order_id=key, customer_id=f"ok:{i}") for i in range(5)]
    with running(group.runtime()):
        publish(group, slow, *followers)
        effects = eventually(lambda: len(group.effects()) == 6 and group.effects(), 30)
    customers = [e[2] for e in effects]
    assert customers[:5] == [f"ok:{i}" for i in range(5)], "the main partition kept flowing"
    assert customers[5] == "fail-twice"


def test_a_redelivered_event_has_its_effect_once(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    order = an_order()
    with running(group.runtime()) as runtime:
        with Publisher(group.topology, "order-service") as publisher:
            publisher.publish(order, event_id="same-id")
            publisher.publish(order, event_id="same-id")
        eventually(lambda: runtime.metrics.value(
            "tidings_events_duplicates_skipped_total", event_type="order.created") == 1, 30,
            "the duplicate to be skipped")
    assert [e[0] for e in group.effects()] == ["same-id"]


def test_non_retryable_errors_skip_the_tiers(tmp_path: Path, kafka_bootstrap: str) -> None:
    group = make_group(tmp_path)
    with running(group.runtime()) as runtime:
        began = time.monotonic()
        publish(group, an_order(customer_id="non-retryable"))
        (dead,) = read_all(kafka_bootstrap, f"{group.topic}.{group.name}.dlq", expect=1)
        assert time.monotonic() - began < 1 + 2, "no tier delay was waited"
    assert headers_of(dead)["error-class"] == "tidings.consumer.context.NonRetryableError"
    assert runtime.metrics.value("tidings_events_retried_total", event_type="order.created",
                                 tier="1s") == 0


def test_concurrency_keeps_each_keys_order(tmp_path: Path) -> None:
    group = make_group(tmp_path, concurrency=4)
    keys = [str(uuid.uuid4()) for _ in range(8)]
    # The total (recorded as the effect's seq) encodes the event's position for its key.
    orders = [an_order(order_id=key, customer_id="slow", total_cents=100 * (seq + 1),
                       items=[LineItem(sku="S", quantity=seq + 1, unit_price_cents=100)])
              for seq in range(10) for key in keys]
    with running(group.runtime()):
        publish(group, *orders)
        effects = eventually(lambda: len(group.effects()) == 80 and group.effects(), 60)
    for key in keys:
        seqs = [e[4] for e in effects if e[1] == key]
        assert seqs == [100 * (n + 1) for n in range(10)], f"{key} out of order: {seqs}"


def test_metrics_and_health_endpoint_match_the_run(tmp_path: Path) -> None:
    group = make_group(tmp_path)
    with running(group.runtime(metrics_port=0)) as runtime:
        publish(group, *(an_order() for _ in range(3)), an_order(customer_id="non-retryable"))
        eventually(lambda: len(group.effects()) == 3, 30)
        port = eventually(lambda: runtime.metrics_port, 10)
        labels = f'event_type="order.created",group="{group.name}"'
        text = eventually(lambda: _metrics_with(
            port, f"tidings_events_processed_total{{{labels}}} 3.0"), 10)
        text = eventually(lambda: _metrics_with(
            port, f'tidings_events_in_flight{{group="{group.name}"}} 0.0'), 10)
        eventually(lambda: _metrics_with(port, f'tidings_consumer_lag{{group="{group.name}"'),
                   15, "the lag gauge")
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status == 200
    assert f"tidings_events_consumed_total{{{labels}}} 4.0" in text
    assert ('tidings_events_dead_lettered_total{error_class='
            f'"tidings.consumer.context.NonRetryableError",{labels}}} 1.0') in text
    assert "tidings_handler_seconds_bucket" in text


def _metrics_with(port: int, needle: str) -> str | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return text if needle in text else None


def test_a_batch_consumer_writes_batches_and_isolates_a_poisoned_event(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    group = make_group(tmp_path, batch=True)
    orders = [an_order() for _ in range(40)] + [an_order(customer_id="fail-always")]
    with running(group.runtime()):
        publish(group, *orders)
        effects = eventually(lambda: len(group.effects()) == 40 and group.effects(), 30)
        read_all(kafka_bootstrap, f"{group.topic}.{group.name}.dlq", expect=1, timeout=30)
    assert {e[1] for e in effects} == {o.order_id for o in orders[:40]}

"""The shop's consumer groups, tested the way a team using Tidings tests its handlers.

Each test uses the pytest plugin's ``tidings_test_broker``: the shop's topology.yaml,
the groups' production processing (codec, claims in their SQLite databases, retry
tiers, DLQs, follow-ups through the outbox), Kafka replaced by memory and the clock
moved by the test. The handler tests beside this file call the handlers directly;
these go through everything a deployed group does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.analytics.report import analytics_report
from consumers.email.smtp_sink import SmtpSink
from producers.order_service import store
from schemas import (
    InventoryRejected,
    InventoryReserved,
    LineItem,
    OrderCancelled,
    OrderCreated,
    StockReported,
    StockRequested,
)
from tidings import headers as h
from tidings.producer.prepare import EventPreparer
from tidings.testing import TestBroker

WHEN = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def an_order(order_id: str, *, sku: str = "MUG", quantity: int = 1,
             email: str = "ada@example.com") -> OrderCreated:
    return OrderCreated(
        order_id=order_id, customer_id="cus-1", customer_email=email, currency="EUR",
        items=[LineItem(sku=sku, quantity=quantity, unit_price_cents=1000)],
        total_cents=1000 * quantity, created_at=WHEN)


@pytest.fixture
def stocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_INITIAL_STOCK", "MUG=3,TEE=1")


def stock(broker: TestBroker) -> dict[str, int]:
    return dict(broker.query("inventory", "SELECT sku, on_hand FROM inventory_stock"))


@pytest.mark.usefixtures("stocked")
def test_inventory_reserves_once_and_its_verdict_moves_the_order(
    tidings_test_broker: TestBroker
) -> None:
    broker = tidings_test_broker
    # The order service wrote the order as pending; order-status runs on its database.
    with broker.connect("order-status") as connection:
        store.insert_order(broker.database("order-status"), connection, {
            "order_id": "o-1", "customer_id": "cus-1", "customer_email": "ada@example.com",
            "currency": "EUR", "total_cents": 2000, "created_at_ms": 0,
            "items": [{"sku": "MUG", "quantity": 2, "unit_price_cents": 1000}]})
    event_id = broker.publish(an_order("o-1", quantity=2))
    broker.publish(an_order("o-1", quantity=2), event_id=event_id)  # Kafka redelivers it

    run = broker.run("inventory")

    assert run.outcomes_of(event_id) == ["processed", "duplicate"]
    assert stock(broker) == {"MUG": 1, "TEE": 1}
    (reserved,) = run.follow_ups
    assert isinstance(reserved.event, InventoryReserved)
    assert (reserved.topic, reserved.event.order_id) == ("inventory", "o-1")

    verdict = broker.run("order-status")
    assert verdict.counts == {"processed": 1}
    with broker.connect("order-status") as connection:
        order = store.load_order(broker.database("order-status"), connection, "o-1")
    assert order is not None and order.status == store.RESERVED


@pytest.mark.usefixtures("stocked")
def test_inventory_rejects_what_is_out_of_stock_and_a_cancel_releases(
    tidings_test_broker: TestBroker
) -> None:
    broker = tidings_test_broker
    broker.publish(an_order("o-big", sku="TEE", quantity=2))
    broker.publish(an_order("o-small", sku="MUG", quantity=2))
    broker.publish(OrderCancelled(order_id="o-small", reason="changed my mind",
                                  cancelled_at=WHEN))
    run = broker.run("inventory")
    assert run.counts == {"processed": 3}
    rejected = [f.event for f in run.follow_ups if isinstance(f.event, InventoryRejected)]
    assert [(r.order_id, r.sku, r.requested, r.available) for r in rejected] == [
        ("o-big", "TEE", 2, 1)]
    assert stock(broker) == {"MUG": 3, "TEE": 1}  # reserved, then released


@pytest.mark.usefixtures("stocked")
def test_poison_goes_to_the_inventory_dlq_at_once_with_its_headers(
    tidings_test_broker: TestBroker
) -> None:
    broker = tidings_test_broker
    broker.publish_raw("orders", b"{not avro}", key=b"o-9", headers={"event-id": "bad-1"})
    run = broker.run("inventory")
    (letter,) = run.dead_letters
    assert letter.topic == "orders.inventory.dlq"
    assert letter.value == b"{not avro}" and letter.event is None
    assert (letter.attempt, letter.error_class, letter.headers["original-topic"]) == (
        1, "tidings.consumer.processing.UndecodableEvent", "orders")
    assert run.retries == []


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    with SmtpSink(0, tmp_path / "mailbox.db") as sink:
        monkeypatch.setenv("EMAIL_SMTP_HOST", sink.host)
        monkeypatch.setenv("EMAIL_SMTP_PORT", str(sink.port))
        yield sink


def test_email_retries_a_451_after_its_30s_tier_and_dead_letters_a_bounce(
    tidings_test_broker: TestBroker, smtp: SmtpSink
) -> None:
    broker = tidings_test_broker
    flaky = broker.publish(an_order("o-1", email="ada+flaky@example.com"))
    bounce = broker.publish(an_order("o-2", email="bob+bounce@example.com"))

    first = broker.run("email")
    assert first.outcomes_of(flaky) == ["retried"]
    assert first.outcomes_of(bounce) == ["dead-lettered"]
    (retry,) = first.retries
    assert retry.topic == "orders.email.retry.30s"
    assert retry.not_before_ms == broker.now_ms() + 30_000
    (letter,) = first.dead_letters
    assert letter.error_class == "consumers.email.smtp.PermanentMailError"
    assert "550" in (letter.error_message or "")

    broker.advance("29s")
    assert broker.run("email").outcomes == []  # the tier holds it until it is due
    broker.advance("1s")
    assert broker.run("email").outcomes_of(flaky) == ["processed"]
    assert [m.recipients for m in smtp.messages()] == [("ada+flaky@example.com",)]


def test_analytics_adds_a_batch_of_orders_and_cancellations(
    tidings_test_broker: TestBroker
) -> None:
    broker = tidings_test_broker
    ids = broker.publish_many([an_order(f"o-{i}", quantity=i) for i in range(1, 5)])
    broker.publish(OrderCancelled(order_id="o-1", reason="late", cancelled_at=WHEN))
    broker.publish(an_order("o-2", quantity=2), event_id=ids[1])  # a redelivery

    run = broker.run("analytics")

    assert run.counts == {"processed": 5, "duplicate": 1}
    report = analytics_report(broker.database("analytics"))
    assert (report.orders, report.revenue_cents, report.cancellations) == (
        4, {"EUR": 10_000}, 1)


def test_a_mail_is_sent_once_when_a_neighbour_in_its_batch_bounces(
    tidings_test_broker: TestBroker, smtp: SmtpSink
) -> None:
    broker = tidings_test_broker
    broker.publish(an_order("o-1", email="ada@example.com"))
    broker.publish(an_order("o-2", email="bob+bounce@example.com"))
    run = broker.run("email")
    assert sorted(run.counts.items()) == [("dead-lettered", 1), ("processed", 1)]
    # Mail is an effect outside the database: a rolled-back batch must not send it again.
    assert [m.recipients for m in smtp.messages()] == [("ada@example.com",)]


@pytest.mark.usefixtures("stocked")
def test_inventory_answers_a_stock_request_to_the_requesting_partition(
    tidings_test_broker: TestBroker
) -> None:
    broker = tidings_test_broker
    # What Publisher.request sends: the request, with where to answer and a correlation id.
    request = EventPreparer(broker.topology, "order-service").prepare(
        StockRequested(sku="MUG"), occurred_at=broker.now())
    headers = {name: value.decode() for name, value in request.headers}
    headers |= {h.REPLY_TO: "order-service.replies:2", h.CORRELATION_ID: "instance-1.r-1"}
    broker.publish_raw(request.topic, request.value, key=request.key, headers=headers)

    run = broker.run("inventory")

    assert run.counts == {"processed": 1}
    (reply,) = run.follow_ups  # ctx.reply, through the outbox
    assert (reply.topic, reply.partition) == ("order-service.replies", 2)
    assert reply.headers[h.CORRELATION_ID] == "instance-1.r-1"
    assert isinstance(reply.event, StockReported) and reply.event.on_hand == 3

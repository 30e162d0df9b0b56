"""The order service over HTTP: orders recorded, their events relayed to Kafka."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from shop_support import Shop, headers_of, make_shop, read_all

from producers.order_service.app import create_app
from producers.order_service.settings import OrderServiceSettings
from schemas import OrderCancelled, OrderCreated
from tidings.codec import SingleObjectCodec

pytestmark = pytest.mark.integration

ORDER = {
    "customer_id": "c-7",
    "customer_email": "grace@example.com",
    "currency": "EUR",
    "items": [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 1999},
              {"sku": "SKU-2", "quantity": 1, "unit_price_cents": 500}],
}


@pytest.fixture
def shop(tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Shop:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    return make_shop(tmp_path)


@pytest.fixture
def client(shop: Shop, tmp_path: Path) -> Iterator[TestClient]:
    settings = OrderServiceSettings(database_url=f"sqlite:///{tmp_path / 'orders.db'}",
                                    topology=shop.topology.path)
    with TestClient(create_app(settings, shop.topology)) as client:
        yield client


def test_an_order_is_accepted_and_its_event_reaches_kafka(
    client: TestClient, shop: Shop, kafka_bootstrap: str
) -> None:
    response = client.post("/orders", json=ORDER)
    assert response.status_code == 202
    body = response.json()
    order_id = body["order_id"]
    assert body["status"] == "pending"
    assert body["status_url"] == f"/orders/{order_id}" == response.headers["location"]

    status = client.get(body["status_url"]).json()
    assert status["status"] == "pending"
    assert status["total_cents"] == 2 * 1999 + 500

    (message,) = read_all(kafka_bootstrap, shop.orders_topic, expect=1)
    codec = SingleObjectCodec(client.app.state.service.outbox.preparer.catalogue)
    event = OrderCreated.from_avro(codec.decode(message.value()).record)
    assert message.key() == order_id.encode()
    assert headers_of(message)["event-type"] == "order.created"
    assert event.order_id == order_id
    assert event.customer_email == "grace@example.com"
    assert [(i.sku, i.quantity) for i in event.items] == [("SKU-1", 2), ("SKU-2", 1)]
    assert event.total_cents == 4498


def test_cancelling_emits_order_cancelled_once(
    client: TestClient, shop: Shop, kafka_bootstrap: str
) -> None:
    order_id = client.post("/orders", json=ORDER).json()["order_id"]
    response = client.post(f"/orders/{order_id}/cancel", json={"reason": "found it cheaper"})
    assert response.status_code == 202
    assert client.get(f"/orders/{order_id}").json()["status"] == "cancelled"
    assert client.post(f"/orders/{order_id}/cancel").status_code == 409

    messages = read_all(kafka_bootstrap, shop.orders_topic, expect=2)
    types = [headers_of(m)["event-type"] for m in messages]
    assert sorted(types) == ["order.cancelled", "order.created"]
    codec = SingleObjectCodec(client.app.state.service.outbox.preparer.catalogue)
    cancelled = next(OrderCancelled.from_avro(codec.decode(m.value()).record)
                     for m in messages if headers_of(m)["event-type"] == "order.cancelled")
    assert cancelled.reason == "found it cheaper"


@pytest.mark.parametrize(("change", "field"), [
    ({"customer_email": "not-an-email"}, "customer_email"),
    ({"currency": "euro"}, "currency"),
    ({"items": []}, "items"),
    ({"items": [{"sku": "S", "quantity": 0, "unit_price_cents": 1}]}, "quantity"),
    ({"surprise": True}, "surprise"),
])
def test_bad_input_gets_422_naming_the_field(
    client: TestClient, change: dict[str, object], field: str
) -> None:
    response = client.post("/orders", json={**ORDER, **change})
    assert response.status_code == 422
    locations = [".".join(str(p) for p in error["loc"]) for error in response.json()["detail"]]
    assert any(field in location for location in locations), locations


def test_unknown_orders_are_404(client: TestClient) -> None:
    assert client.get("/orders/nope").status_code == 404
    assert client.post("/orders/nope/cancel").status_code == 404


def test_a_rejected_order_writes_nothing(client: TestClient, shop: Shop,
                                         kafka_bootstrap: str) -> None:
    client.post("/orders", json={**ORDER, "currency": "x"})
    time.sleep(1)
    assert read_all(kafka_bootstrap, shop.orders_topic, expect=None, timeout=5) == []


def test_an_order_keeps_the_callback_url_its_outcome_goes_to(client: TestClient) -> None:
    hook = "https://customer.example/hooks/orders?token=1"
    body = client.post("/orders", json={**ORDER, "callback_url": hook})
    assert body.status_code == 202
    assert client.get(body.json()["status_url"]).json()["callback_url"] == hook
    bad = client.post("/orders", json={**ORDER, "callback_url": "not a url"})
    assert bad.status_code == 422 and "callback_url" in bad.text

"""order-status: inventory's verdict moves a pending order, and nothing else; a move
publishes the order's outcome (order.status_changed, with its callback_url)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from producers.order_service import store
from producers.order_service.status import handle, setup
from schemas import InventoryRejected, InventoryReserved, OrderStatusChanged, ReservedItem
from tidings.codec.events import Event
from tidings.consumer.context import EventMeta, HandlerContext, NonRetryableError
from tidings.db import Database, transaction
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


class Orders:
    """The order service's database, and a way to deliver events as the runtime does."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.connection = database.connect()
        self.published: list[Event] = []
        with transaction(self.connection):
            setup(self.connection, database)

    def place(self, order_id: str, status: str = store.PENDING,
              callback_url: str | None = None) -> None:
        with transaction(self.connection):
            store.insert_order(self.database, self.connection, {
                "order_id": order_id, "customer_id": "cus_1",
                "customer_email": "ada@example.com", "currency": "EUR", "total_cents": 500,
                "created_at_ms": 0,
                "items": [{"sku": "MUG", "quantity": 1, "unit_price_cents": 500}],
                "callback_url": callback_url,
            })
            if status != store.PENDING:
                store.set_status(self.database, self.connection, order_id, status, "by test")

    def deliver(self, event: Event) -> None:
        meta = EventMeta(event_id=str(uuid.uuid4()), event_type=event.event_type,
                         topic="inventory", partition=0, offset=0, key=None, headers={})
        ctx = HandlerContext(group="order-status", meta=meta, db=self.connection,
                             database=self.database, stage=self._stage)
        with transaction(self.connection):
            handle(event, ctx)

    def status(self, order_id: str) -> tuple[str, str | None]:
        row = store.load_order(self.database, self.connection, order_id)
        assert row is not None
        return row.status, row.status_reason

    def _stage(self, event: Event, **options: Any) -> str:
        assert not options, "order-status publishes plainly (no delay, no reply)"
        self.published.append(event)
        return "staged"


@pytest.fixture
def orders(tmp_path: Path) -> Iterator[Orders]:
    orders = Orders(Database(f"sqlite:///{tmp_path / 'order-service.db'}"))
    yield orders
    orders.connection.close()


def reserved(order_id: str) -> InventoryReserved:
    return InventoryReserved(order_id=order_id, items=[ReservedItem(sku="MUG", quantity=1)],
                             reserved_at=WHEN)


def rejected(order_id: str) -> InventoryRejected:
    return InventoryRejected(order_id=order_id, sku="MUG", requested=3, available=1,
                             rejected_at=WHEN)


def test_a_reservation_moves_a_pending_order_to_reserved(orders: Orders) -> None:
    orders.place("o-1")
    orders.deliver(reserved("o-1"))

    assert orders.status("o-1") == (store.RESERVED, None)
    (outcome,) = orders.published
    assert isinstance(outcome, OrderStatusChanged)
    assert (outcome.order_id, outcome.status, outcome.callback_url) == ("o-1", "reserved", None)


def test_the_outcome_carries_the_orders_callback_url(orders: Orders) -> None:
    orders.place("o-2", callback_url="https://customer.example/hooks/orders")
    orders.deliver(rejected("o-2"))

    (outcome,) = orders.published
    assert isinstance(outcome, OrderStatusChanged) and outcome.status == store.REJECTED
    assert outcome.callback_url == "https://customer.example/hooks/orders"
    assert outcome.reason is not None and "MUG" in outcome.reason


def test_a_rejection_moves_a_pending_order_to_rejected_naming_the_sku(orders: Orders) -> None:
    orders.place("o-1")
    orders.deliver(rejected("o-1"))

    status, reason = orders.status("o-1")
    assert status == store.REJECTED
    assert reason is not None and "MUG" in reason and "requested 3" in reason


def test_a_cancelled_order_stays_cancelled(orders: Orders) -> None:
    orders.place("o-1", store.CANCELLED)
    orders.deliver(reserved("o-1"))
    orders.deliver(rejected("o-1"))

    assert orders.status("o-1") == (store.CANCELLED, "by test")
    assert orders.published == []


def test_a_redelivered_or_late_verdict_changes_nothing(orders: Orders) -> None:
    orders.place("o-1")
    orders.deliver(reserved("o-1"))
    orders.deliver(reserved("o-1"))
    orders.deliver(rejected("o-1"))

    assert orders.status("o-1") == (store.RESERVED, None)
    assert len(orders.published) == 1  # one move, one outcome


def test_a_verdict_for_an_unknown_order_is_not_an_error(orders: Orders) -> None:
    orders.deliver(reserved("nobody-knows"))

    assert store.load_order(orders.database, orders.connection, "nobody-knows") is None


def test_other_event_types_are_not_retried() -> None:
    class Stray(Event):
        event_type = "stray.thing"
        schema_version = 1

    ctx: Any = None
    with pytest.raises(NonRetryableError, match=r"stray\.thing"):
        handle(Stray(), ctx)


def test_the_group_is_declared_in_the_topology() -> None:
    topology = load_topology(REPO / "topology.yaml")
    group = topology.consumers["order-status"]

    assert group.subscribes == ["inventory.reserved", "inventory.rejected"]
    assert group.handler == "producers.order_service.status:handle"

"""Analytics: per-minute and per-SKU totals, written with one statement per table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.analytics import analytics_report, handle_batch, setup
from schemas import LineItem, OrderCancelled, OrderCreated
from tidings.codec.events import Event
from tidings.consumer.context import BatchContext, Delivered, EventMeta
from tidings.db import Database, transaction

T0 = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


class CountingConnection:
    """A connection that counts the statements a handler sends through it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.calls: list[tuple[str, int]] = []  # (method, rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.calls.append(("execute", 1))
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        rows = list(rows)
        self.calls.append(("executemany", len(rows)))
        return self.connection.executemany(sql, rows)


class Warehouse:
    """The analytics group's database, and a way to deliver batches as the runtime does."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.connection = database.connect()
        with transaction(self.connection):
            setup(self.connection, database)

    def deliver(self, events: Sequence[Event]) -> CountingConnection:
        counting = CountingConnection(self.connection)
        items = [
            Delivered(event, EventMeta(event_id=str(uuid.uuid4()), event_type=event.event_type,
                                       topic="orders", partition=0, offset=n, key=None,
                                       headers={}))
            for n, event in enumerate(events)
        ]

        def stage(follow_up: Event) -> str:
            raise AssertionError(f"analytics publishes nothing, got {follow_up}")

        ctx = BatchContext(group="analytics", db=counting, database=self.database,
                           items=items, stage=stage)
        with transaction(self.connection):
            handle_batch(list(events), ctx)
        return counting

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall())


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    warehouse = Warehouse(Database(f"sqlite:///{tmp_path / 'analytics.db'}"))
    yield warehouse
    warehouse.connection.close()


def created(order_id: str, at: datetime, *lines: tuple[str, int, int],
            currency: str = "EUR", coupon: str | None = None,
            discount: int = 0) -> OrderCreated:
    items = [LineItem(sku=sku, quantity=q, unit_price_cents=p) for sku, q, p in lines]
    return OrderCreated(
        order_id=order_id, customer_id="cus_1", customer_email="ada@example.com",
        currency=currency, items=items, total_cents=sum(q * p for _, q, p in lines) - discount,
        created_at=at, coupon_code=coupon,
    )


def cancelled(order_id: str, at: datetime) -> OrderCancelled:
    return OrderCancelled(order_id=order_id, reason="nope", cancelled_at=at)


def test_a_batch_is_counted_per_minute_per_sku_and_per_cancellation(
    warehouse: Warehouse,
) -> None:
    later = T0 + timedelta(minutes=1)
    warehouse.deliver([
        created("o-1", T0, ("MUG", 2, 1000), ("TEE", 1, 500)),
        created("o-2", T0 + timedelta(seconds=20), ("MUG", 1, 1000),
                coupon="SPRING", discount=100),
        created("o-3", later, ("MUG", 3, 900), currency="USD"),
        cancelled("o-1", later),
        cancelled("o-2", later + timedelta(seconds=5)),
    ])

    assert warehouse.rows("analytics_orders_per_minute") == [
        ("2026-03-14T15:09Z", "EUR", 2, 2500 + 900),
        ("2026-03-14T15:10Z", "USD", 1, 2700),
    ]
    assert warehouse.rows("analytics_sku_totals") == [
        ("MUG", "EUR", 3, 3000),  # list price: the coupon discounts the order, not the SKU
        ("MUG", "USD", 3, 2700),
        ("TEE", "EUR", 1, 500),
    ]
    assert warehouse.rows("analytics_cancellations_per_minute") == [("2026-03-14T15:10Z", 2)]


def test_batches_add_up(warehouse: Warehouse) -> None:
    warehouse.deliver([created("o-1", T0, ("MUG", 1, 1000))])
    warehouse.deliver([created("o-2", T0, ("MUG", 2, 1000)), cancelled("o-1", T0)])
    warehouse.deliver([cancelled("o-2", T0)])

    assert warehouse.rows("analytics_orders_per_minute") == [
        ("2026-03-14T15:09Z", "EUR", 2, 3000)]
    assert warehouse.rows("analytics_sku_totals") == [("MUG", "EUR", 3, 3000)]
    assert warehouse.rows("analytics_cancellations_per_minute") == [("2026-03-14T15:09Z", 2)]


def test_a_batch_is_written_with_one_bulk_statement_per_table(warehouse: Warehouse) -> None:
    events: list[Event] = [
        created(f"o-{n}", T0 + timedelta(seconds=7 * n), (f"SKU-{n % 13}", 1 + n % 3, 199))
        for n in range(450)
    ]
    events += [cancelled(f"o-{n}", T0 + timedelta(seconds=11 * n)) for n in range(50)]

    counting = warehouse.deliver(events)

    assert [method for method, _ in counting.calls] == ["executemany"] * 3
    minutes = {e.created_at.replace(second=0) for e in events if isinstance(e, OrderCreated)}
    assert [rows for _, rows in counting.calls] == [len(minutes), 13, 10]
    report = analytics_report(warehouse.database, top=3)
    assert report.orders == 450 and report.cancellations == 50
    assert report.minutes == len(minutes)


def test_a_batch_without_cancellations_writes_two_statements(warehouse: Warehouse) -> None:
    counting = warehouse.deliver([created("o-1", T0, ("MUG", 1, 1000))])

    assert [method for method, _ in counting.calls] == ["executemany", "executemany"]


def test_the_report_shows_orders_revenue_per_currency_and_top_skus(
    warehouse: Warehouse,
) -> None:
    warehouse.deliver([
        created("o-1", T0, ("MUG", 5, 1000), ("TEE", 1, 2000)),
        created("o-2", T0, ("CAP", 2, 1500), currency="USD"),
        created("o-3", T0, ("TEE", 2, 2000)),
        cancelled("o-3", T0),
    ])

    report = analytics_report(warehouse.database, top=2)

    assert report.orders == 3
    assert report.revenue_cents == {"EUR": 11000, "USD": 3000}
    assert report.cancellations == 1
    assert [(s.sku, s.quantity, s.revenue_cents) for s in report.top_skus] == [
        ("MUG", 5, 5000), ("TEE", 3, 6000)]


def test_delivered_wrappers_are_accepted_too(warehouse: Warehouse) -> None:
    meta = EventMeta(event_id="e-1", event_type="order.created", topic="orders", partition=0,
                     offset=0, key=None, headers={})
    event = created("o-1", T0, ("MUG", 1, 1000))
    ctx = BatchContext(group="analytics", db=warehouse.connection, database=warehouse.database,
                       items=[Delivered(event, meta)], stage=lambda e: "")
    with transaction(warehouse.connection):
        handle_batch([Delivered(event, meta)], ctx)

    assert analytics_report(warehouse.database).orders == 1

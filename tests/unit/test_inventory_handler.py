"""Inventory: reserve or reject per order, release on cancel, never oversell.

Runs the real handler against a real SQLite database, inside the same kind of
transaction the runtime opens around it.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.inventory import handle, inventory_report, setup
from consumers.inventory import stock as inventory_stock
from schemas import InventoryRejected, InventoryReserved, LineItem, OrderCancelled, OrderCreated
from tidings.codec.events import Event
from tidings.consumer.context import EventMeta, HandlerContext, NonRetryableError
from tidings.db import Database, transaction
from tidings.errors import ConfigError

WHEN = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
INITIAL = {"MUG": 10, "TEE": 3, "POSTER": 1}
_offsets = itertools.count()


class Shop:
    """The inventory group's database, and a way to deliver events as the runtime does."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.connection = database.connect()
        self.published: list[Event] = []

    def deliver(self, event: Event, *, event_id: str | None = None) -> list[Event]:
        """Handle ``event`` in one transaction; return what it published."""
        staged: list[Event] = []

        def stage(follow_up: Event) -> str:
            staged.append(follow_up)
            return str(uuid.uuid4())

        meta = EventMeta(event_id=event_id or str(uuid.uuid4()), event_type=event.event_type,
                         topic="orders", partition=0, offset=next(_offsets), key=None,
                         headers={})
        ctx = HandlerContext(group="inventory", meta=meta, db=self.connection,
                             database=self.database, stage=stage)
        with transaction(self.connection):
            handle(event, ctx)
        self.published.extend(staged)
        return staged

    def stock(self) -> dict[str, int]:
        rows = self.connection.execute("SELECT sku, on_hand FROM inventory_stock").fetchall()
        return {sku: on_hand for sku, on_hand in rows}

    def status(self, order_id: str) -> str | None:
        return inventory_stock.reservation_status(self.database, self.connection, order_id)


def open_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stock: dict[str, int]) -> Shop:
    monkeypatch.setenv("INVENTORY_INITIAL_STOCK", ",".join(f"{k}={v}" for k, v in stock.items()))
    database = Database(f"sqlite:///{tmp_path / 'inventory.db'}")
    shop = Shop(database)
    with transaction(shop.connection):
        setup(shop.connection, database)
    return shop


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    shop = open_shop(tmp_path, monkeypatch, INITIAL)
    yield shop
    shop.connection.close()


def created(order_id: str, *lines: tuple[str, int]) -> OrderCreated:
    items = [LineItem(sku=sku, quantity=quantity, unit_price_cents=250) for sku, quantity in lines]
    return OrderCreated(
        order_id=order_id, customer_id="cus_1", customer_email="ada@example.com",
        currency="EUR", items=items, total_cents=sum(250 * q for _, q in lines),
        created_at=WHEN,
    )


def cancelled(order_id: str) -> OrderCancelled:
    return OrderCancelled(order_id=order_id, reason="changed my mind", cancelled_at=WHEN)


def test_an_order_in_stock_is_reserved_and_its_units_taken(shop: Shop) -> None:
    published = shop.deliver(created("o-1", ("MUG", 2), ("TEE", 1)))

    assert shop.stock() == {"MUG": 8, "TEE": 2, "POSTER": 1}
    assert shop.status("o-1") == "reserved"
    [event] = published
    assert isinstance(event, InventoryReserved)
    assert event.order_id == "o-1"
    assert [(i.sku, i.quantity) for i in event.items] == [("MUG", 2), ("TEE", 1)]


def test_a_short_order_is_rejected_naming_the_first_short_sku_and_takes_nothing(
    shop: Shop,
) -> None:
    published = shop.deliver(created("o-1", ("MUG", 2), ("TEE", 5), ("POSTER", 2)))

    assert shop.stock() == INITIAL
    assert shop.status("o-1") == "rejected"
    [event] = published
    assert isinstance(event, InventoryRejected)
    assert (event.sku, event.requested, event.available) == ("TEE", 5, 3)


def test_lines_of_the_same_sku_count_together(shop: Shop) -> None:
    [event] = shop.deliver(created("o-1", ("MUG", 6), ("MUG", 6)))

    assert isinstance(event, InventoryRejected)
    assert (event.sku, event.requested, event.available) == ("MUG", 12, 10)
    assert shop.stock() == INITIAL


def test_an_unknown_sku_has_no_stock(shop: Shop) -> None:
    [event] = shop.deliver(created("o-1", ("MUG", 1), ("GHOST", 1)))

    assert isinstance(event, InventoryRejected)
    assert (event.sku, event.requested, event.available) == ("GHOST", 1, 0)
    assert shop.stock() == INITIAL


def test_the_last_unit_can_be_sold_and_then_the_sku_is_out(shop: Shop) -> None:
    [first] = shop.deliver(created("o-1", ("POSTER", 1)))
    [second] = shop.deliver(created("o-2", ("POSTER", 1)))

    assert isinstance(first, InventoryReserved)
    assert isinstance(second, InventoryRejected)
    assert shop.stock()["POSTER"] == 0
    assert inventory_report(shop.database).sold_out == ["POSTER"]


def test_cancelling_a_reservation_gives_its_units_back_once(shop: Shop) -> None:
    shop.deliver(created("o-1", ("MUG", 4), ("TEE", 3)))

    assert shop.deliver(cancelled("o-1")) == []
    assert shop.stock() == INITIAL
    assert shop.status("o-1") == "released"

    shop.deliver(cancelled("o-1"))  # a second cancellation (a new event id) releases nothing
    assert shop.stock() == INITIAL


def test_cancelling_a_rejected_order_changes_nothing(shop: Shop) -> None:
    shop.deliver(created("o-1", ("MUG", 1)))
    shop.deliver(created("o-2", ("TEE", 9)))

    shop.deliver(cancelled("o-2"))

    assert shop.stock() == {"MUG": 9, "TEE": 3, "POSTER": 1}
    assert shop.status("o-2") == "rejected"


def test_an_order_cancelled_before_it_was_seen_is_never_reserved(shop: Shop) -> None:
    # order.created went to a retry tier; its cancellation overtook it.
    assert shop.deliver(cancelled("o-1")) == []
    assert shop.stock() == INITIAL

    assert shop.deliver(created("o-1", ("MUG", 2))) == []
    assert shop.stock() == INITIAL
    assert shop.status("o-1") == "cancelled"


def test_a_redelivered_order_created_is_a_no_op_even_without_runtime_dedup(shop: Shop) -> None:
    event = created("o-1", ("MUG", 3))
    shop.deliver(event, event_id="e-1")

    assert shop.deliver(event, event_id="e-1") == []
    assert shop.deliver(event, event_id="e-2") == []  # re-published with a new id
    assert shop.stock()["MUG"] == 7


def test_a_failing_handler_leaves_no_trace(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(inventory_stock, "record_reservation", boom)
    with pytest.raises(RuntimeError):
        shop.deliver(created("o-1", ("MUG", 3)))

    assert shop.stock() == INITIAL
    assert shop.status("o-1") is None


def test_other_event_types_are_not_retried() -> None:
    class Stray(Event):
        event_type = "stray.thing"
        schema_version = 1

    ctx: Any = None
    with pytest.raises(NonRetryableError, match=r"stray\.thing"):
        handle(Stray(), ctx)


def test_setup_seeds_the_catalogue_file_and_never_overwrites_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INVENTORY_INITIAL_STOCK", raising=False)
    database = Database(f"sqlite:///{tmp_path / 'inventory.db'}")
    shop = Shop(database)
    with transaction(shop.connection):
        setup(shop.connection, database)
    catalogue = inventory_stock.load_stock_file(
        Path(__file__).parents[2] / "consumers" / "inventory" / "stock.yaml")
    assert shop.stock() == catalogue
    assert len(catalogue) >= 8
    assert sum(1 for count in catalogue.values() if count < 5) >= 2

    sku = min(catalogue)
    shop.deliver(created("o-1", (sku, 1)))
    monkeypatch.setenv("INVENTORY_INITIAL_STOCK", f"{sku}=1000,NEW-SKU=4")
    with transaction(shop.connection):
        setup(shop.connection, database)

    assert shop.stock()[sku] == catalogue[sku] - 1
    assert shop.stock()["NEW-SKU"] == 4
    shop.connection.close()


@pytest.mark.parametrize("spec", ["MUG", "MUG=-1", "MUG=ten", "=4"])
def test_a_bad_initial_stock_is_a_clear_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="INVENTORY_INITIAL_STOCK"):
        inventory_stock.parse_stock_spec(spec)


def test_a_bad_stock_file_is_a_clear_config_error(tmp_path: Path) -> None:
    path = tmp_path / "stock.yaml"
    path.write_text("stock:\n  MUG: -3\n")
    with pytest.raises(ConfigError, match="MUG"):
        inventory_stock.load_stock_file(path)


def test_stock_follows_arithmetic_and_never_goes_negative_over_1000_random_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Enough stock to reserve for a while, little enough to run out and refill on cancels.
    initial = {"MUG": 60, "TEE": 30, "POSTER": 8}
    shop = open_shop(tmp_path, monkeypatch, initial)
    rng = random.Random(20260314)
    skus = [*initial] * 6 + ["GHOST"]  # an unknown SKU now and then
    model = dict(initial)
    held: dict[str, dict[str, int]] = {}  # order -> units it holds
    decided: set[str] = set()  # orders inventory has seen (or saw cancelled first)
    orders: list[OrderCreated] = []
    counts = {"reserved": 0, "rejected": 0, "released": 0}
    sold_out = 0

    for step in range(1000):
        event: OrderCreated | OrderCancelled
        roll = rng.random()
        if roll < 0.55 or not orders:
            order_id = f"o-{step}"
            lines = [(rng.choice(skus), rng.randint(1, 4)) for _ in range(rng.randint(1, 3))]
            event = created(order_id, *lines)
            orders.append(event)
        elif roll < 0.65:
            event = rng.choice(orders)  # a redelivery
            order_id = event.order_id
        else:
            order_id = rng.choice(orders).order_id if rng.random() < 0.9 else f"late-{step}"
            event = cancelled(order_id)

        published = shop.deliver(event)

        if isinstance(event, OrderCreated) and order_id not in decided:
            decided.add(order_id)
            wanted: dict[str, int] = {}
            for item in event.items:
                wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
            if all(model.get(sku, 0) >= quantity for sku, quantity in wanted.items()):
                for sku, quantity in wanted.items():
                    model[sku] -= quantity
                held[order_id] = wanted
                counts["reserved"] += 1
                assert [type(e) for e in published] == [InventoryReserved]
            else:
                counts["rejected"] += 1
                assert [type(e) for e in published] == [InventoryRejected]
        elif isinstance(event, OrderCancelled):
            decided.add(order_id)
            if order_id in held:
                counts["released"] += 1
            for sku, quantity in held.pop(order_id, {}).items():
                model[sku] += quantity
            assert published == []
        else:
            assert published == []
        stock = shop.stock()
        assert stock == model, f"step {step}"
        assert min(stock.values()) >= 0
        sold_out += min(stock.values()) == 0

    # Every path was exercised, including running a SKU dry.
    assert min(counts.values()) > 30, counts
    assert sold_out > 0
    report = inventory_report(shop.database)
    assert report.on_hand == model
    assert report.orders_by_status["reserved"] == len(held)
    assert report.orders_by_status["released"] == counts["released"]
    shop.connection.close()

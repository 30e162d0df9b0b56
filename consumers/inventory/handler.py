"""Inventory's decisions: reserve an order's stock, or reject it; release on cancel.

Correct under redelivery on its own, not only through the runtime's idempotency
store: the reservation row keyed by ``order_id`` is written in the same transaction
as the stock change, so a second ``order.created`` for an order finds it and does
nothing, and a second ``order.cancelled`` finds it already released.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from consumers.inventory import stock
from consumers.inventory.settings import InventorySettings
from schemas import (
    InventoryRejected,
    InventoryReserved,
    LineItem,
    OrderCancelled,
    OrderCreated,
    ReservedItem,
    StockReported,
    StockRequested,
)
from tidings.codec.events import Event
from tidings.consumer.context import HandlerContext, NonRetryableError
from tidings.db import Database


class UnexpectedEvent(NonRetryableError):
    """An event type inventory does not subscribe to: topology and handler disagree."""


def setup(connection: Any, database: Database) -> None:
    """Create the tables and seed the SKUs not stocked yet (see :mod:`.settings`)."""
    settings = InventorySettings()
    initial = (
        stock.parse_stock_spec(settings.initial_stock)
        if settings.initial_stock
        else stock.load_stock_file(settings.stock_file)
    )
    stock.create_tables(connection)
    stock.seed(database, connection, initial)


def handle(event: Event, ctx: HandlerContext) -> None:
    """Reserve stock for ``order.created``; release it for ``order.cancelled``; answer
    ``stock.requested`` (a request) with ``stock.reported``."""
    if isinstance(event, OrderCreated):
        reserve(event, ctx)
    elif isinstance(event, OrderCancelled):
        release(event, ctx)
    elif isinstance(event, StockRequested):
        on_hand = stock.lock_stock(ctx.database, ctx.db, [event.sku]).get(event.sku, 0)
        ctx.reply(StockReported(sku=event.sku, on_hand=on_hand, reported_at=datetime.now(UTC)))
    else:
        raise UnexpectedEvent(f"inventory does not handle {event.event_type!r} events")


def requested(items: Iterable[LineItem]) -> dict[str, int]:
    """Units wanted per SKU, in order of first appearance (an order may repeat a SKU)."""
    wanted: dict[str, int] = {}
    for item in items:
        wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
    return wanted


def reserve(event: OrderCreated, ctx: HandlerContext) -> None:
    """All lines in stock: take them and publish ``inventory.reserved``; else reject."""
    database, connection = ctx.database, ctx.db
    seen = stock.reservation_status(database, connection, event.order_id)
    if seen is not None:
        ctx.log.info("order %s already %s; nothing to do", event.order_id, seen)
        return
    wanted = requested(event.items)
    on_hand = stock.lock_stock(database, connection, wanted)
    now = datetime.now(UTC)
    for sku, quantity in wanted.items():
        available = on_hand.get(sku, 0)  # a SKU we never stocked has none
        if available < quantity:
            stock.record_reservation(
                database, connection, event.order_id, stock.REJECTED, event_id=ctx.event_id,
                reason=f"out of stock: {sku} (requested {quantity}, available {available})",
            )
            ctx.publish(InventoryRejected(
                order_id=event.order_id, sku=sku, requested=quantity, available=available,
                rejected_at=now,
            ))
            return
    stock.adjust(database, connection, {sku: -quantity for sku, quantity in wanted.items()})
    stock.record_reservation(
        database, connection, event.order_id, stock.RESERVED, event_id=ctx.event_id,
        lines=wanted,
    )
    ctx.publish(InventoryReserved(
        order_id=event.order_id,
        items=[ReservedItem(sku=sku, quantity=quantity) for sku, quantity in wanted.items()],
        reserved_at=now,
    ))


def release(event: OrderCancelled, ctx: HandlerContext) -> None:
    """Give an active reservation's units back; anything else leaves stock alone."""
    database, connection = ctx.database, ctx.db
    status = stock.reservation_status(database, connection, event.order_id)
    if status is None:
        # The order.created may still be on its way through a retry tier; remember
        # the cancellation so that it is not reserved when it arrives.
        stock.record_reservation(
            database, connection, event.order_id, stock.CANCELLED, event_id=ctx.event_id,
            reason=f"cancelled before reservation: {event.reason}",
        )
        return
    if status != stock.RESERVED:
        ctx.log.info("order %s is %s; cancelling it releases nothing", event.order_id, status)
        return
    lines = stock.reservation_lines(database, connection, event.order_id)
    stock.adjust(database, connection, lines)
    stock.mark(database, connection, event.order_id, stock.RELEASED,
               f"cancelled: {event.reason}")

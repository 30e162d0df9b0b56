"""The ``order-status`` consumer group: inventory's verdict moves an order's status.

It runs against the order service's own database. ``inventory.reserved`` moves a
``pending`` order to ``reserved``; ``inventory.rejected`` moves it to ``rejected``
with the short SKU as reason. Only ``pending`` moves: a cancelled order stays
cancelled, and a redelivered verdict finds the order moved already and changes
nothing. A move publishes ``order.status_changed`` (with the order's
``callback_url``, where the webhooks service delivers it) in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from producers.order_service import store
from schemas import InventoryRejected, InventoryReserved, OrderStatusChanged
from tidings.codec.events import Event
from tidings.consumer.context import HandlerContext, NonRetryableError
from tidings.db import Database


class UnexpectedEvent(NonRetryableError):
    """An event type order-status does not subscribe to: topology and handler disagree."""


def setup(connection: Any, database: Database) -> None:
    """Create the order tables if the order service has not yet (same statements)."""
    for statement in store._TABLES:
        connection.execute(statement)
    store.add_callback_column(database, connection)


def handle(event: Event, ctx: HandlerContext) -> None:
    """Apply inventory's verdict to the order, if it is still pending."""
    if isinstance(event, InventoryReserved):
        status, reason = store.RESERVED, None
    elif isinstance(event, InventoryRejected):
        status = store.REJECTED
        reason = (f"out of stock: {event.sku} "
                  f"(requested {event.requested}, available {event.available})")
    else:
        raise UnexpectedEvent(f"order-status does not handle {event.event_type!r} events")
    moved = store.set_status(ctx.database, ctx.db, event.order_id, status, reason,
                             only_from=(store.PENDING,))
    current = store.load_order(ctx.database, ctx.db, event.order_id)
    if not moved:
        ctx.log.info("order %s not moved to %s: %s", event.order_id, status,
                     "unknown order" if current is None else f"it is {current.status}")
        return
    ctx.publish(OrderStatusChanged(
        order_id=event.order_id, status=status, reason=reason,
        callback_url=current.callback_url if current else None,
        changed_at=datetime.now(UTC)))

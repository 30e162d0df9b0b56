"""Folding a batch of events into per-minute and per-SKU totals, in memory.

Pure: no database, so a batch's totals are easy to test and are written with one
statement per table however long the batch is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas import OrderCancelled, OrderCreated
from tidings.codec.events import Event
from tidings.consumer.context import Delivered


def minute_of(moment: datetime) -> str:
    """The UTC minute a moment falls in, as sortable text: ``2026-03-14T15:09Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class BatchTotals:
    """What one batch adds to the running totals."""

    #: (minute, currency) -> orders; revenue is kept per currency, never summed across.
    orders: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (minute, currency) -> revenue in minor units (order totals, after coupons).
    revenue: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (sku, currency) -> units sold.
    sku_quantity: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (sku, currency) -> list-price revenue (a coupon discounts an order, not a SKU).
    sku_revenue: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: minute -> cancellations.
    cancellations: Counter[str] = field(default_factory=Counter)
    ignored: int = 0

    def add(self, event: Event) -> None:
        """Count one order event; any other type is only tallied in ``ignored``."""
        if isinstance(event, OrderCreated):
            key = (minute_of(event.created_at), event.currency)
            self.orders[key] += 1
            self.revenue[key] += event.total_cents
            for item in event.items:
                sku_key = (item.sku, event.currency)
                self.sku_quantity[sku_key] += item.quantity
                self.sku_revenue[sku_key] += item.quantity * item.unit_price_cents
        elif isinstance(event, OrderCancelled):
            # Counted in the minute of the cancellation, and nothing subtracted: the
            # cancelled order's currency and lines are not on this event, and "orders
            # placed" and "cancellations" are both worth seeing as they happened.
            self.cancellations[minute_of(event.cancelled_at)] += 1
        else:
            self.ignored += 1


def totals_of(events: Iterable[Event | Delivered]) -> BatchTotals:
    """The totals of a batch (items may be events or :class:`Delivered` wrappers)."""
    totals = BatchTotals()
    for item in events:
        totals.add(item.event if isinstance(item, Delivered) else item)
    return totals

"""The shop's events as typed models, one per schema in this directory.

Each model mirrors the *current* version of its schema (the one topology.yaml
names); ``tidings topology validate`` fails when a model and its schema drift apart.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AwareDatetime, Field, model_validator

from tidings import Event, Record

#: Avro ``int`` is 32-bit and ``long`` 64-bit; bigger Python ints would not encode.
INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1

# A deliberately loose address check: one "@", something on each side, a dot in the
# domain. Deliverability is the mail service's business, not the event's.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

OrderId = Annotated[str, Field(min_length=1, max_length=64)]
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S+$")]
Quantity = Annotated[int, Field(ge=1, le=INT_MAX)]
Cents = Annotated[int, Field(ge=0, le=LONG_MAX)]


class LineItem(Record):
    """One line of an order: so many units of a SKU at a unit price."""

    sku: Sku
    quantity: Quantity
    unit_price_cents: Cents


class OrderCreated(Event):
    """A customer placed an order (schema v2: adds the optional coupon code)."""

    event_type = "order.created"
    schema_version = 2

    order_id: OrderId
    customer_id: Annotated[str, Field(min_length=1, max_length=64)]
    customer_email: Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[LineItem], Field(min_length=1)]
    total_cents: Cents
    created_at: AwareDatetime
    coupon_code: Annotated[str, Field(min_length=1, max_length=32)] | None = None

    @model_validator(mode="after")
    def _total_without_coupon_is_the_sum(self) -> Self:
        # A coupon may discount the total, so only orders without one must add up.
        expected = sum(item.quantity * item.unit_price_cents for item in self.items)
        if self.coupon_code is None and self.total_cents != expected:
            raise ValueError(
                f"total_cents is {self.total_cents} but the items add up to {expected}"
            )
        if self.total_cents > expected:
            raise ValueError(f"total_cents {self.total_cents} exceeds the items' {expected}")
        return self


class OrderCancelled(Event):
    """The customer cancelled an order before it shipped."""

    event_type = "order.cancelled"
    schema_version = 1

    order_id: OrderId
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    cancelled_at: AwareDatetime


class ReservedItem(Record):
    """Units of one SKU held for an order."""

    sku: Sku
    quantity: Quantity


class InventoryReserved(Event):
    """Stock for every line of an order is held for it."""

    event_type = "inventory.reserved"
    schema_version = 1

    order_id: OrderId
    items: Annotated[list[ReservedItem], Field(min_length=1)]
    reserved_at: AwareDatetime


class InventoryRejected(Event):
    """An order could not be reserved because a SKU is out of stock."""

    event_type = "inventory.rejected"
    schema_version = 1

    order_id: OrderId
    sku: Sku
    requested: Quantity
    available: Annotated[int, Field(ge=0, le=INT_MAX)]
    rejected_at: AwareDatetime

    @model_validator(mode="after")
    def _short_of_stock(self) -> Self:
        if self.available >= self.requested:
            raise ValueError(
                f"{self.available} available covers the {self.requested} requested; "
                "that is a reservation, not a rejection"
            )
        return self


class StockRequested(Event):
    """A request to inventory: how many units of ``sku`` are on hand?"""

    event_type = "stock.requested"
    schema_version = 1

    sku: Sku


class StockReported(Event):
    """Inventory's reply to :class:`StockRequested`."""

    event_type = "stock.reported"
    schema_version = 1

    sku: Sku
    on_hand: Annotated[int, Field(ge=0, le=INT_MAX)]
    reported_at: AwareDatetime


class OrderStatusChanged(Event):
    """An order reached an outcome; delivered to its ``callback_url`` when it has one."""

    event_type = "order.status_changed"
    schema_version = 1

    order_id: OrderId
    status: Annotated[str, Field(min_length=1, max_length=32)]
    reason: Annotated[str, Field(max_length=500)] | None = None
    callback_url: Annotated[str, Field(max_length=2048)] | None = None
    changed_at: AwareDatetime


class WebhookRequested(Event):
    """One delivery of one event to one webhook endpoint (see consumers.webhooks)."""

    event_type = "webhook.requested"
    schema_version = 1

    webhook_id: Annotated[str, Field(min_length=1, max_length=128)]
    endpoint_id: Annotated[str, Field(min_length=1, max_length=128)]
    url: Annotated[str, Field(max_length=2048)]
    #: The event being delivered: its type and event id.
    source_type: Annotated[str, Field(min_length=1, max_length=200)]
    source_event_id: Annotated[str, Field(min_length=1, max_length=200)]
    payload: str
    deferrals: Annotated[int, Field(ge=0, le=INT_MAX)] = 0
    requested_at: AwareDatetime


class OrderReminder(Event):
    """A reminder about an order, scheduled to be sent later."""

    event_type = "order.reminder"
    schema_version = 1

    order_id: OrderId
    customer_email: Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)]
    note: Annotated[str, Field(min_length=1, max_length=500)]


class ReportRequested(Event):
    """A report is due (the tick of a recurring schedule)."""

    event_type = "report.requested"
    schema_version = 1

    report: Annotated[str, Field(min_length=1, max_length=100)]
    period_end: AwareDatetime

"""The shop's Avro schemas (``*.avsc``) and their typed models.

``from schemas import OrderCreated``
"""

from schemas.models import (
    InventoryRejected,
    InventoryReserved,
    LineItem,
    OrderCancelled,
    OrderCreated,
    OrderReminder,
    OrderStatusChanged,
    ReportRequested,
    ReservedItem,
    StockReported,
    StockRequested,
    WebhookRequested,
)

__all__ = [
    "InventoryRejected",
    "InventoryReserved",
    "LineItem",
    "OrderCancelled",
    "OrderCreated",
    "OrderReminder",
    "OrderStatusChanged",
    "ReportRequested",
    "ReservedItem",
    "StockReported",
    "StockRequested",
    "WebhookRequested",
]

"""The one event every contender sends: an ``order.created`` of about 250 bytes of Avro.

Also the settings every producer shares, so no contender gets a kinder configuration.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

PARTITIONS = 6
EVENT_TYPE = "order.created"

#: Every producer: idempotent, acks=all, linger 5 ms (Tidings' own defaults).
ACKS = "all"
LINGER_MS = 5
RAW_PRODUCER_CONFIG: dict[str, Any] = {
    "acks": ACKS,
    "enable.idempotence": True,
    "linger.ms": LINGER_MS,
    "max.in.flight.requests.per.connection": 5,
}

#: Header the latency scenario stamps on every event (wall clock, ns).
SENT_HEADER = "bench-sent-ns"

_COLOURS = ("BLUE", "RED", "GREEN", "BLACK", "WHITE")
_SIZES = ("XS", "S", "M", "L", "XL")
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def order(i: int) -> dict[str, Any]:
    """Business data of order ``i`` as a service holds it before publishing: a dict
    whose ``created_at`` is an aware datetime (5 line items, ~250 bytes as Avro)."""
    items: list[dict[str, Any]] = [
        {
            "sku": f"SKU-{(i * 7 + j) % 1_000_000:06d}-{_COLOURS[j % 5]}"
                   f"-{_SIZES[(i + j) % 5]}-V{j + 1}",
            "quantity": 1 + (i + j) % 3,
            "unit_price_cents": 1299 + 250 * j,
        }
        for j in range(5)
    ]
    return {
        "order_id": str(uuid.UUID(int=i + 1)),
        "customer_id": f"customer-{i % 10_000:06d}",
        "customer_email": f"customer.{i % 10_000:06d}@shop.example.com",
        "currency": "EUR",
        "items": items,
        "total_cents": sum(x["quantity"] * x["unit_price_cents"] for x in items),
        "created_at": _EPOCH + dt.timedelta(milliseconds=i),
    }


def orders(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [order(i) for i in range(start, start + n)]

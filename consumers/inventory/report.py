"""What inventory ended up with, for the demo's summary."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.db import Database


@dataclass(frozen=True)
class InventoryReport:
    """Stock on hand per SKU and how many orders ended in each reservation state."""

    on_hand: dict[str, int]
    orders_by_status: dict[str, int]

    @property
    def sold_out(self) -> list[str]:
        """SKUs with nothing left."""
        return sorted(sku for sku, count in self.on_hand.items() if count == 0)


def inventory_report(database: Database) -> InventoryReport:
    """Read the inventory group's database (it must have been set up)."""
    connection = database.connect()
    try:
        on_hand = connection.execute(
            "SELECT sku, on_hand FROM inventory_stock ORDER BY sku"
        ).fetchall()
        statuses = connection.execute(
            "SELECT status, COUNT(*) FROM inventory_reservations GROUP BY status "
            "ORDER BY status"
        ).fetchall()
    finally:
        connection.close()
    return InventoryReport(
        on_hand={str(sku): int(count) for sku, count in on_hand},
        orders_by_status={str(status): int(count) for status, count in statuses},
    )

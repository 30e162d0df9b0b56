"""What analytics counted, for the demo's summary."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.db import Database


@dataclass(frozen=True)
class SkuTotal:
    """Units and list-price revenue of one SKU in one currency."""

    sku: str
    currency: str
    quantity: int
    revenue_cents: int


@dataclass(frozen=True)
class AnalyticsReport:
    """Orders, revenue per currency, cancellations, and the best-selling SKUs."""

    orders: int
    revenue_cents: dict[str, int]
    cancellations: int
    minutes: int
    top_skus: list[SkuTotal]


def analytics_report(database: Database, *, top: int = 5) -> AnalyticsReport:
    """Read the analytics group's database (it must have been set up)."""
    connection = database.connect()
    try:
        per_currency = connection.execute(
            "SELECT currency, SUM(orders), SUM(revenue_cents) "
            "FROM analytics_orders_per_minute GROUP BY currency ORDER BY currency"
        ).fetchall()
        minutes = connection.execute(
            "SELECT COUNT(DISTINCT minute) FROM analytics_orders_per_minute"
        ).fetchone()[0]
        cancellations = connection.execute(
            "SELECT COALESCE(SUM(cancellations), 0) FROM analytics_cancellations_per_minute"
        ).fetchone()[0]
        skus = connection.execute(
            database.sql(
                "SELECT sku, currency, quantity, revenue_cents FROM analytics_sku_totals "
                "ORDER BY quantity DESC, sku LIMIT ?"
            ),
            (top,),
        ).fetchall()
    finally:
        connection.close()
    return AnalyticsReport(
        orders=sum(int(row[1]) for row in per_currency),
        revenue_cents={str(row[0]): int(row[2]) for row in per_currency},
        cancellations=int(cancellations),
        minutes=int(minutes),
        top_skus=[SkuTotal(str(s), str(c), int(q), int(r)) for s, c, q, r in skus],
    )

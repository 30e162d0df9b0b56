"""The analytics tables, and adding a batch's totals to them in one statement each."""

from __future__ import annotations

from typing import Any

from consumers.analytics.aggregate import BatchTotals
from tidings.db import Database

TABLES = (
    """CREATE TABLE IF NOT EXISTS analytics_orders_per_minute (
        minute TEXT NOT NULL,
        currency TEXT NOT NULL,
        orders BIGINT NOT NULL,
        revenue_cents BIGINT NOT NULL,
        PRIMARY KEY (minute, currency)
    )""",
    """CREATE TABLE IF NOT EXISTS analytics_sku_totals (
        sku TEXT NOT NULL,
        currency TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        revenue_cents BIGINT NOT NULL,
        PRIMARY KEY (sku, currency)
    )""",
    """CREATE TABLE IF NOT EXISTS analytics_cancellations_per_minute (
        minute TEXT PRIMARY KEY,
        cancellations BIGINT NOT NULL
    )""",
)

_ORDERS = (
    "INSERT INTO analytics_orders_per_minute (minute, currency, orders, revenue_cents) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (minute, currency) DO UPDATE SET "
    "orders = analytics_orders_per_minute.orders + excluded.orders, "
    "revenue_cents = analytics_orders_per_minute.revenue_cents + excluded.revenue_cents"
)
_SKUS = (
    "INSERT INTO analytics_sku_totals (sku, currency, quantity, revenue_cents) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (sku, currency) DO UPDATE SET "
    "quantity = analytics_sku_totals.quantity + excluded.quantity, "
    "revenue_cents = analytics_sku_totals.revenue_cents + excluded.revenue_cents"
)
_CANCELLATIONS = (
    "INSERT INTO analytics_cancellations_per_minute (minute, cancellations) VALUES (?, ?) "
    "ON CONFLICT (minute) DO UPDATE SET cancellations = "
    "analytics_cancellations_per_minute.cancellations + excluded.cancellations"
)


def create_tables(connection: Any) -> None:
    """Create the analytics tables if they are missing."""
    for statement in TABLES:
        connection.execute(statement)


def add_totals(database: Database, connection: Any, totals: BatchTotals) -> None:
    """Add a batch's totals: at most one ``executemany`` per table.

    Rows go in key order so that two concurrent batches upsert (and lock) rows in
    the same order and cannot deadlock each other on PostgreSQL.
    """
    if totals.orders:
        connection.executemany(database.sql(_ORDERS), [
            (minute, currency, count, totals.revenue[minute, currency])
            for (minute, currency), count in sorted(totals.orders.items())
        ])
    if totals.sku_quantity:
        connection.executemany(database.sql(_SKUS), [
            (sku, currency, quantity, totals.sku_revenue[sku, currency])
            for (sku, currency), quantity in sorted(totals.sku_quantity.items())
        ])
    if totals.cancellations:
        connection.executemany(database.sql(_CANCELLATIONS),
                               sorted(totals.cancellations.items()))

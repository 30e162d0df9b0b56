"""The order service's own database: orders, their lines, and the outbox beside them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tidings.db import Database, transaction
from tidings.producer.outbox import ensure_outbox_table

PENDING, RESERVED, REJECTED, CANCELLED = "pending", "reserved", "rejected", "cancelled"

_TABLES = (
    """CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        customer_email TEXT NOT NULL,
        currency TEXT NOT NULL,
        total_cents BIGINT NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        callback_url TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS order_items (
        order_id TEXT NOT NULL REFERENCES orders(order_id),
        line INTEGER NOT NULL,
        sku TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        unit_price_cents BIGINT NOT NULL,
        PRIMARY KEY (order_id, line)
    )""",
)


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    customer_id: str
    customer_email: str
    currency: str
    total_cents: int
    status: str
    status_reason: str | None
    created_at_ms: int
    updated_at_ms: int
    items: list[dict[str, Any]]
    callback_url: str | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


def create_tables(database: Database) -> None:
    connection = database.connect()
    try:
        with transaction(connection):
            for statement in _TABLES:
                connection.execute(statement)
            add_callback_column(database, connection)
        ensure_outbox_table(database, connection)
    finally:
        connection.close()


def add_callback_column(database: Database, connection: Any) -> None:
    """Order tables made before ``callback_url`` existed get the column."""
    if database.dialect == "postgresql":
        connection.execute("ALTER TABLE orders ADD COLUMN IF NOT EXISTS callback_url TEXT")
        return
    columns = {row[1] for row in connection.execute("PRAGMA table_info(orders)")}
    if "callback_url" not in columns:
        connection.execute("ALTER TABLE orders ADD COLUMN callback_url TEXT")


def insert_order(database: Database, connection: Any, order: dict[str, Any]) -> None:
    connection.execute(
        database.sql(
            "INSERT INTO orders (order_id, customer_id, customer_email, currency, total_cents, "
            "status, created_at_ms, updated_at_ms, callback_url) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        (order["order_id"], order["customer_id"], order["customer_email"], order["currency"],
         order["total_cents"], PENDING, order["created_at_ms"], order["created_at_ms"],
         order.get("callback_url")),
    )
    connection.executemany(
        database.sql(
            "INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        [(order["order_id"], line, item["sku"], item["quantity"], item["unit_price_cents"])
         for line, item in enumerate(order["items"])],
    )


def load_order(database: Database, connection: Any, order_id: str) -> OrderRow | None:
    row = connection.execute(
        database.sql(
            "SELECT order_id, customer_id, customer_email, currency, total_cents, status, "
            "status_reason, created_at_ms, updated_at_ms, callback_url FROM orders "
            "WHERE order_id = ?"
        ),
        (order_id,),
    ).fetchone()
    if row is None:
        return None
    items = connection.execute(
        database.sql(
            "SELECT sku, quantity, unit_price_cents FROM order_items WHERE order_id = ? "
            "ORDER BY line"
        ),
        (order_id,),
    ).fetchall()
    (order_id, customer_id, email, currency, total, status, reason, created, updated,
     callback_url) = row
    return OrderRow(
        order_id=order_id, customer_id=customer_id, customer_email=email, currency=currency,
        total_cents=total, status=status, status_reason=reason, created_at_ms=created,
        updated_at_ms=updated,
        items=[{"sku": sku, "quantity": quantity, "unit_price_cents": price}
               for sku, quantity, price in items],
        callback_url=callback_url,
    )


def set_status(
    database: Database, connection: Any, order_id: str, status: str, reason: str | None = None,
    *, only_from: tuple[str, ...] | None = None,
) -> bool:
    """Move an order to ``status``; with ``only_from``, only from one of those states."""
    sql = "UPDATE orders SET status = ?, status_reason = ?, updated_at_ms = ? WHERE order_id = ?"
    params: list[Any] = [status, reason, now_ms(), order_id]
    if only_from:
        sql += f" AND status IN ({', '.join('?' for _ in only_from)})"
        params.extend(only_from)
    cursor = connection.execute(database.sql(sql), tuple(params))
    return bool(cursor.rowcount)

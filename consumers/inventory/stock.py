"""Stock per SKU and reservations per order, in the inventory group's own database.

Every function takes the runtime's connection, inside a transaction it owns: none of
them commits. Placeholders are written as ``?`` and converted by ``Database.sql``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tidings.db import Database
from tidings.errors import ConfigError

#: Reservation states. ``cancelled`` marks an order cancelled before its
#: ``order.created`` was handled (it came back through a retry tier later), so that
#: the late ``order.created`` does not hold stock for an order nobody will ship.
RESERVED, REJECTED, RELEASED, CANCELLED = "reserved", "rejected", "released", "cancelled"

TABLES = (
    # The CHECK is the last line of defence: whatever a handler gets wrong, a
    # transaction that would oversell fails instead of committing.
    """CREATE TABLE IF NOT EXISTS inventory_stock (
        sku TEXT PRIMARY KEY,
        on_hand BIGINT NOT NULL CHECK (on_hand >= 0)
    )""",
    """CREATE TABLE IF NOT EXISTS inventory_reservations (
        order_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        reason TEXT,
        event_id TEXT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS inventory_reservation_lines (
        order_id TEXT NOT NULL REFERENCES inventory_reservations(order_id),
        sku TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        PRIMARY KEY (order_id, sku)
    )""",
)

_PAIR = re.compile(r"^\s*(\S+?)\s*=\s*(\d+)\s*$")


def create_tables(connection: Any) -> None:
    """Create the inventory tables if they are missing."""
    for statement in TABLES:
        connection.execute(statement)


def parse_stock_spec(text: str) -> dict[str, int]:
    """``"SKU-1=100, SKU-2=5"`` as ``{"SKU-1": 100, "SKU-2": 5}``."""
    stock: dict[str, int] = {}
    for part in filter(str.strip, text.split(",")):
        match = _PAIR.match(part)
        if match is None:
            raise ConfigError(
                f"INVENTORY_INITIAL_STOCK: {part.strip()!r} is not SKU=COUNT "
                "(e.g. SKU-1=100,SKU-2=5)"
            )
        stock[match[1]] = int(match[2])
    return stock


def load_stock_file(path: Path) -> dict[str, int]:
    """The ``stock:`` mapping of a YAML file, checked to be SKU -> non-negative count."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the initial stock: {exc}") from None
    entries = document.get("stock") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected a 'stock:' mapping of SKU to count")
    stock: dict[str, int] = {}
    for sku, count in entries.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"{path}: stock of {sku!r} must be a whole number >= 0")
        stock[str(sku)] = count
    return stock


def seed(database: Database, connection: Any, stock: Mapping[str, int]) -> None:
    """Add SKUs that are not stocked yet; counts already there are the service's, kept."""
    connection.executemany(
        database.sql(
            "INSERT INTO inventory_stock (sku, on_hand) VALUES (?, ?) "
            "ON CONFLICT (sku) DO NOTHING"
        ),
        sorted(stock.items()),
    )


def lock_stock(database: Database, connection: Any, skus: Iterable[str]) -> dict[str, int]:
    """On-hand counts of ``skus`` (unknown SKUs are absent), locked until commit.

    PostgreSQL needs ``FOR UPDATE`` so that two transactions cannot both see the last
    unit; SQLite's write transaction (``BEGIN IMMEDIATE``) already excludes writers.
    Rows are locked in SKU order so that concurrent orders cannot deadlock.
    """
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    lock = " ORDER BY sku FOR UPDATE" if database.dialect == "postgresql" else ""
    marks = ", ".join("?" for _ in wanted)
    rows = connection.execute(
        database.sql(f"SELECT sku, on_hand FROM inventory_stock WHERE sku IN ({marks}){lock}"),
        tuple(wanted),
    ).fetchall()
    return {str(sku): int(on_hand) for sku, on_hand in rows}


def adjust(database: Database, connection: Any, deltas: Mapping[str, int]) -> None:
    """Add ``deltas[sku]`` (negative to take) to each SKU's on-hand count."""
    connection.executemany(
        database.sql("UPDATE inventory_stock SET on_hand = on_hand + ? WHERE sku = ?"),
        [(delta, sku) for sku, delta in sorted(deltas.items())],
    )


def reservation_status(database: Database, connection: Any, order_id: str) -> str | None:
    """The order's reservation state, or None when inventory has not seen the order."""
    row = connection.execute(
        database.sql("SELECT status FROM inventory_reservations WHERE order_id = ?"),
        (order_id,),
    ).fetchone()
    return None if row is None else str(row[0])


def record_reservation(
    database: Database, connection: Any, order_id: str, status: str, *, event_id: str,
    lines: Mapping[str, int] | None = None, reason: str | None = None,
) -> None:
    """Record the decision about an order; ``lines`` are the units it holds."""
    connection.execute(
        database.sql(
            "INSERT INTO inventory_reservations (order_id, status, reason, event_id, "
            "updated_at_ms) VALUES (?, ?, ?, ?, ?)"
        ),
        (order_id, status, reason, event_id, _now_ms()),
    )
    if lines:
        connection.executemany(
            database.sql(
                "INSERT INTO inventory_reservation_lines (order_id, sku, quantity) "
                "VALUES (?, ?, ?)"
            ),
            [(order_id, sku, quantity) for sku, quantity in lines.items()],
        )


def reservation_lines(database: Database, connection: Any, order_id: str) -> dict[str, int]:
    """The units an order holds (or held), per SKU."""
    rows = connection.execute(
        database.sql(
            "SELECT sku, quantity FROM inventory_reservation_lines WHERE order_id = ?"
        ),
        (order_id,),
    ).fetchall()
    return {str(sku): int(quantity) for sku, quantity in rows}


def mark(database: Database, connection: Any, order_id: str, status: str, reason: str) -> None:
    """Move an existing reservation to ``status``."""
    connection.execute(
        database.sql(
            "UPDATE inventory_reservations SET status = ?, reason = ?, updated_at_ms = ? "
            "WHERE order_id = ?"
        ),
        (status, reason, _now_ms(), order_id),
    )


def _now_ms() -> int:
    return int(time.time() * 1000)

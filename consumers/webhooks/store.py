"""The webhooks service's database: endpoints, what was delivered, and the delivery log."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from consumers.webhooks.signing import new_secret
from tidings.db import Database, transaction

#: The endpoint that delivers to per-event callback URLs (``callback_url`` of an event,
#: e.g. ``POST /orders``): it has a secret like any endpoint, and no URL of its own.
CALLBACKS = "callbacks"

TABLES = (
    """CREATE TABLE IF NOT EXISTS webhook_endpoints (
        id TEXT PRIMARY KEY,
        url TEXT,
        secret TEXT NOT NULL,
        events TEXT NOT NULL,
        description TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS webhook_delivered (
        webhook_id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        delivered_at_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS webhook_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint_id TEXT NOT NULL,
        webhook_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        error TEXT,
        duration_ms INTEGER NOT NULL,
        at_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS webhook_attempts_by_endpoint ON webhook_attempts "
    "(endpoint_id, id)",
)
_POSTGRES = {"INTEGER PRIMARY KEY AUTOINCREMENT": "BIGSERIAL PRIMARY KEY"}


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str | None
    secret: str
    events: tuple[str, ...]
    description: str | None
    enabled: bool
    created_at_ms: int

    def wants(self, event_type: str) -> bool:
        return self.enabled and ("*" in self.events or event_type in self.events)

    def public(self) -> dict[str, Any]:
        """What the API shows (never the secret)."""
        return {"id": self.id, "url": self.url, "events": list(self.events),
                "description": self.description, "enabled": self.enabled,
                "created_at_ms": self.created_at_ms}


@dataclass(frozen=True)
class Attempt:
    endpoint_id: str
    webhook_id: str
    event_type: str
    attempt: int
    outcome: str  # delivered, failed, deferred, dropped
    status: int | None
    error: str | None
    duration_ms: int
    at_ms: int


def now_ms() -> int:
    return int(time.time() * 1000)


def create_tables(connection: Any, database: Database) -> None:
    for statement in TABLES:
        if database.dialect == "postgresql":
            for sqlite_text, postgres_text in _POSTGRES.items():
                statement = statement.replace(sqlite_text, postgres_text)
        connection.execute(statement)
    row = connection.execute(database.sql("SELECT 1 FROM webhook_endpoints WHERE id = ?"),
                             (CALLBACKS,)).fetchone()
    if row is None:
        connection.execute(database.sql(
            "INSERT INTO webhook_endpoints (id, url, secret, events, description, enabled, "
            "created_at_ms) VALUES (?, NULL, ?, ?, ?, 1, ?)"),
            (CALLBACKS, new_secret(), json.dumps(["*"]),
             "deliveries to the callback_url an event carries", now_ms()))


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], bool(row[5]),
                    int(row[6]))


_COLUMNS = "id, url, secret, events, description, enabled, created_at_ms"


def add_endpoint(database: Database, connection: Any, url: str, events: list[str], *,
                 description: str | None = None, secret: str | None = None) -> Endpoint:
    endpoint = Endpoint(f"ep_{uuid.uuid4().hex[:16]}", url, secret or new_secret(),
                        tuple(events), description, True, now_ms())
    with transaction(connection):
        connection.execute(database.sql(
            f"INSERT INTO webhook_endpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1, ?)"),
            (endpoint.id, url, endpoint.secret, json.dumps(list(events)), description,
             endpoint.created_at_ms))
    return endpoint


def endpoints(database: Database, connection: Any) -> list[Endpoint]:
    rows = connection.execute(f"SELECT {_COLUMNS} FROM webhook_endpoints ORDER BY "
                              "created_at_ms, id").fetchall()
    return [_endpoint(row) for row in rows]


def endpoint(database: Database, connection: Any, endpoint_id: str) -> Endpoint | None:
    row = connection.execute(database.sql(
        f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = ?"), (endpoint_id,)).fetchone()
    return _endpoint(row) if row else None


def remove_endpoint(database: Database, connection: Any, endpoint_id: str) -> bool:
    with transaction(connection):
        cursor = connection.execute(
            database.sql("DELETE FROM webhook_endpoints WHERE id = ?"), (endpoint_id,))
    return bool(cursor.rowcount)


def delivered(database: Database, connection: Any, webhook_id: str) -> bool:
    row = connection.execute(database.sql(
        "SELECT 1 FROM webhook_delivered WHERE webhook_id = ?"), (webhook_id,)).fetchone()
    return row is not None


def record_delivered(database: Database, connection: Any, endpoint_id: str,
                     webhook_id: str) -> None:
    connection.execute(database.sql(
        "INSERT INTO webhook_delivered (webhook_id, endpoint_id, delivered_at_ms) "
        "VALUES (?, ?, ?)"), (webhook_id, endpoint_id, now_ms()))


def log_attempt(database: Database, connection: Any, attempt: Attempt) -> None:
    connection.execute(database.sql(
        "INSERT INTO webhook_attempts (endpoint_id, webhook_id, event_type, attempt, outcome, "
        "status, error, duration_ms, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        (attempt.endpoint_id, attempt.webhook_id, attempt.event_type, attempt.attempt,
         attempt.outcome, attempt.status, attempt.error, attempt.duration_ms, attempt.at_ms))


def attempts(database: Database, connection: Any, endpoint_id: str | None = None,
             limit: int = 100) -> list[Attempt]:
    """The delivery log, newest first (of one endpoint, or all)."""
    where = "WHERE endpoint_id = ? " if endpoint_id else ""
    params: tuple[Any, ...] = (endpoint_id, limit) if endpoint_id else (limit,)
    rows = connection.execute(database.sql(
        "SELECT endpoint_id, webhook_id, event_type, attempt, outcome, status, error, "
        f"duration_ms, at_ms FROM webhook_attempts {where}ORDER BY id DESC LIMIT ?"),
        params).fetchall()
    return [Attempt(*row) for row in rows]

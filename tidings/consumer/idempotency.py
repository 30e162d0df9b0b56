"""Which events a group has already applied, kept beside the group's own data.

The key is recorded in the handler's own transaction: if the handler's effects
commit, so does the key, and a redelivery is skipped; if they roll back, so does
the key, and the redelivery is handled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from tidings.db import Database, transaction

TABLE = "tidings_processed"


class IdempotencyStore:
    """``(group, event-id)`` pairs in the group's database (SQLite or PostgreSQL)."""

    def __init__(self, database: Database, group: str) -> None:
        self.database = database
        self.group = group

    def create(self, connection: Any) -> None:
        with transaction(connection):
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "group_id TEXT NOT NULL, event_id TEXT NOT NULL, "
                "processed_at_ms BIGINT NOT NULL, PRIMARY KEY (group_id, event_id))"
            )

    def claim(self, connection: Any, event_id: str) -> bool:
        """Record ``event_id`` in the open transaction; False when it was already there."""
        cursor = connection.execute(
            self.database.sql(f"INSERT INTO {TABLE} (group_id, event_id, processed_at_ms) "
                              "VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
            (self.group, event_id, int(time.time() * 1000)),
        )
        return bool(cursor.rowcount == 1)

    def seen(self, connection: Any, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` were already processed."""
        ids = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = connection.execute(
                self.database.sql(f"SELECT event_id FROM {TABLE} WHERE group_id = ? "
                                  f"AND event_id IN ({marks})"),
                (self.group, *chunk),
            ).fetchall()
            found.update(row[0] for row in rows)
        return found

    def claim_many(self, connection: Any, event_ids: Iterable[str]) -> None:
        now = int(time.time() * 1000)
        connection.executemany(
            self.database.sql(f"INSERT INTO {TABLE} (group_id, event_id, processed_at_ms) "
                              "VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
            [(self.group, event_id, now) for event_id in event_ids],
        )

    def forget(self, connection: Any, event_ids: Iterable[str]) -> None:
        """Drop keys so the events are handled again (used by ``replay --reprocess``)."""
        connection.executemany(
            self.database.sql(f"DELETE FROM {TABLE} WHERE group_id = ? AND event_id = ?"),
            [(self.group, event_id) for event_id in event_ids],
        )

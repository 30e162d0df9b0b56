"""Which events a group has already applied, kept beside the group's own data.

The key is recorded in the handler's own transaction: if the handler's effects
commit, so does the key, and a redelivery is skipped; if they roll back, so does
the key, and the redelivery is handled.

A claim has a *scope*. Live delivery (the main topic, its retry tiers, plain replays
and redrives) claims in the group's own scope, ``(group, event-id)``. A ``--reprocess``
replay runs the handler once more for events already applied, so its copies claim in
a scope of that replay, ``(group, replay-id, event-id)``: each event is applied exactly
once more for that replay, however often the copy is delivered (duplicates in the
source range, a killed consumer, a resumed copier), and a second reprocess replay is a
new scope that applies once more.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from tidings.db import Database, transaction

TABLE = "tidings_processed"
#: Claims of ``--reprocess`` replays, one scope per replay.
REPLAY_TABLE = "tidings_replay_processed"

#: The scope of live delivery.
LIVE = ""

#: ``(scope, event_id)``: what one claim records (scope: LIVE, or a replay id).
ClaimKey = tuple[str, str]

_CHUNK = 500  # rows per INSERT: far below SQLite's limit on bound parameters


class IdempotencyStore:
    """``(group, event-id)`` and ``(group, replay-id, event-id)`` claims in the group's
    database (SQLite or PostgreSQL)."""

    def __init__(self, database: Database, group: str) -> None:
        self.database = database
        self.group = group
        sql = database.sql
        self._insert_live = sql(f"INSERT INTO {TABLE} (group_id, event_id, processed_at_ms) "
                                "VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        self._insert_replay = sql(
            f"INSERT INTO {REPLAY_TABLE} (group_id, replay_id, event_id, processed_at_ms) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
        self._statements: dict[tuple[bool, int], str] = {}
        # SQLite: the rows live in the key's own index (one B-tree to write per claim,
        # not a table and an index). Tables made before keep their layout.
        self._clustered = " WITHOUT ROWID" if database.dialect == "sqlite" else ""

    def create(self, connection: Any) -> None:
        with transaction(connection):
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "group_id TEXT NOT NULL, event_id TEXT NOT NULL, "
                "processed_at_ms BIGINT NOT NULL, PRIMARY KEY (group_id, event_id))"
                + self._clustered
            )
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {REPLAY_TABLE} ("
                "group_id TEXT NOT NULL, replay_id TEXT NOT NULL, event_id TEXT NOT NULL, "
                "processed_at_ms BIGINT NOT NULL, PRIMARY KEY (group_id, replay_id, event_id))"
                + self._clustered
            )

    def claim(self, connection: Any, event_id: str, scope: str = LIVE) -> bool:
        """Record one claim in the open transaction; False when it was already there."""
        now = int(time.time() * 1000)
        if scope == LIVE:
            cursor = connection.execute(self._insert_live, (self.group, event_id, now))
        else:
            cursor = connection.execute(self._insert_replay, (self.group, scope, event_id, now))
        return bool(cursor.rowcount == 1)

    def claim_new(self, connection: Any, keys: Sequence[ClaimKey]) -> set[ClaimKey]:
        """Record every claim in the open transaction, in as few statements as the keys'
        scopes allow; returns the keys that were not there before (the ones to apply)."""
        fresh: set[ClaimKey] = set()
        by_scope: dict[str, list[str]] = {}
        for scope, event_id in keys:
            by_scope.setdefault(scope, []).append(event_id)
        now = int(time.time() * 1000)
        for scope, ids in by_scope.items():
            unique = list(dict.fromkeys(ids))
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                rows = connection.execute(self._insert_returning(scope != LIVE, len(chunk)),
                                          self._params(scope, chunk, now)).fetchall()
                fresh.update((scope, row[0]) for row in rows)
        return fresh

    def _insert_returning(self, replay: bool, count: int) -> str:
        statement = self._statements.get((replay, count))
        if statement is None:
            if replay:
                head = f"INSERT INTO {REPLAY_TABLE} (group_id, replay_id, event_id, " \
                       "processed_at_ms) VALUES "
                row = "(?, ?, ?, ?)"
            else:
                head = f"INSERT INTO {TABLE} (group_id, event_id, processed_at_ms) VALUES "
                row = "(?, ?, ?)"
            statement = self.database.sql(
                head + ", ".join([row] * count) + " ON CONFLICT DO NOTHING RETURNING event_id")
            self._statements[(replay, count)] = statement
        return statement

    def _params(self, scope: str, ids: Sequence[str], now: int) -> list[Any]:
        group = self.group
        params: list[Any] = []
        if scope == LIVE:
            for event_id in ids:
                params += (group, event_id, now)
        else:
            for event_id in ids:
                params += (group, scope, event_id, now)
        return params

    def release(self, connection: Any, keys: Iterable[ClaimKey]) -> None:
        """Drop claims made in the open transaction for events that will not run in it."""
        by_scope: dict[str, list[str]] = {}
        for scope, event_id in keys:
            by_scope.setdefault(scope, []).append(event_id)
        for scope, ids in by_scope.items():
            if scope == LIVE:
                connection.executemany(
                    self.database.sql(f"DELETE FROM {TABLE} WHERE group_id = ? "
                                      "AND event_id = ?"),
                    [(self.group, event_id) for event_id in ids])
            else:
                connection.executemany(
                    self.database.sql(f"DELETE FROM {REPLAY_TABLE} WHERE group_id = ? "
                                      "AND replay_id = ? AND event_id = ?"),
                    [(self.group, scope, event_id) for event_id in ids])

    def seen(self, connection: Any, event_ids: Iterable[str], scope: str = LIVE) -> set[str]:
        """Which of ``event_ids`` were already applied in ``scope``."""
        ids = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            if scope == LIVE:
                statement = (f"SELECT event_id FROM {TABLE} WHERE group_id = ? "
                             f"AND event_id IN ({marks})")
                params: tuple[Any, ...] = (self.group, *chunk)
            else:
                statement = (f"SELECT event_id FROM {REPLAY_TABLE} WHERE group_id = ? "
                             f"AND replay_id = ? AND event_id IN ({marks})")
                params = (self.group, scope, *chunk)
            rows = connection.execute(self.database.sql(statement), params).fetchall()
            found.update(row[0] for row in rows)
        return found

    def claim_many(self, connection: Any, event_ids: Iterable[str],
                   scope: str = LIVE) -> None:
        """Record claims in ``scope`` without asking which were new."""
        now = int(time.time() * 1000)
        if scope == LIVE:
            connection.executemany(self._insert_live,
                                   [(self.group, event_id, now) for event_id in event_ids])
        else:
            connection.executemany(self._insert_replay,
                                   [(self.group, scope, event_id, now) for event_id in event_ids])

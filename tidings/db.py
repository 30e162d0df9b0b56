"""Database connections by URL: SQLite by default, PostgreSQL when the URL says so.

Only what the outbox and the idempotency store need: a DB-API connection, the
parameter style, and SQLite settings that keep a committed transaction through a
crash of the process (WAL journal) while letting a relay read as a service writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidings.errors import ConfigError


@dataclass(frozen=True)
class Database:
    """Where a service keeps its state; ``connect()`` opens a new connection."""

    url: str

    @property
    def dialect(self) -> str:
        return "postgresql" if self.url.startswith(("postgresql://", "postgres://")) \
            else "sqlite"

    @property
    def placeholder(self) -> str:
        return "%s" if self.dialect == "postgresql" else "?"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))

    def connect(self) -> Any:
        if self.dialect == "postgresql":
            try:
                import psycopg  # type: ignore[import-not-found]
            except ImportError:
                raise ConfigError(
                    f"{self.url.split('@')[-1]}: PostgreSQL needs the psycopg package "
                    "(pip install 'psycopg[binary]')"
                ) from None
            return psycopg.connect(self.url)
        path = self.sqlite_path
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL under WAL survives a killed process (not a power cut), at far less fsync.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=30000")
        return connection

    def sql(self, statement: str) -> str:
        """``statement`` written with ``?`` placeholders, in this database's style."""
        return statement if self.placeholder == "?" else statement.replace("?", "%s")


def open_database(url: str) -> Database:
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            f"database URL {url!r} is not supported; use sqlite:///path/to/file.db or "
            "postgresql://user@host/db"
        )
    return Database(url)


@contextmanager
def transaction(connection: Any) -> Iterator[Any]:
    """Run a block in one transaction on ``connection``; commit, or roll back on error."""
    if isinstance(connection, sqlite3.Connection):
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return
    with connection.transaction():
        yield connection

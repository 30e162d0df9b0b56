"""Database connections by URL: SQLite by default, PostgreSQL when the URL says so.

Only what the outbox and the idempotency store need: a DB-API connection, the
parameter style, and SQLite settings that keep a committed transaction through a
crash of the process (WAL journal) while letting a relay read as a service writes.

Both kinds of connection behave alike: a statement outside :func:`transaction`
commits on its own (SQLite ``isolation_level=None``, psycopg ``autocommit=True``),
so a lone SELECT never leaves a transaction open, and ``execute``/``executemany``
are methods of the connection itself.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tidings.errors import ConfigError

log = logging.getLogger("tidings.db")


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
            connection_class = _postgres_connection_class()
            if connection_class is None:
                raise ConfigError(
                    f"{self.url.split('@')[-1]}: PostgreSQL needs the psycopg package "
                    "(pip install 'tidings[postgres]' or 'psycopg[binary]')"
                )
            # autocommit: a statement outside transaction() commits by itself, as on
            # SQLite; without it a lone SELECT would open a transaction that stays
            # "idle in transaction" and turns the next transaction() into a savepoint
            # that is never committed.
            return connection_class.connect(self.url, autocommit=True)
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


_PG_INTRANS = 2  # psycopg.pq.TransactionStatus.INTRANS


@cache
def _postgres_connection_class() -> Any:
    """psycopg's Connection with ``executemany``, as sqlite3 has; None without psycopg."""
    try:
        import psycopg
    except ImportError:
        return None

    class PostgresConnection(psycopg.Connection[Any]):
        def executemany(self, query: str, params_seq: Iterable[Sequence[Any]]) -> Any:
            cursor = self.cursor()
            cursor.executemany(query, params_seq)
            return cursor

    return PostgresConnection


def redact_url(url: str) -> str:
    """``url`` without its password, for logs (``postgresql://user:***@host/db``)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def open_database(url: str) -> Database:
    """The database at ``url``: ``sqlite:///path/to/file.db`` or ``postgresql://...``."""
    usage = "use sqlite:///path/to/file.db or postgresql://user@host:port/dbname"
    prefixes = ("sqlite:///", "postgresql://", "postgres://")
    if url in prefixes:
        raise ConfigError(f"database URL {url!r} names no database; {usage}")
    if url.startswith(prefixes):
        return Database(url)
    scheme, sep, _ = url.partition("://")
    if not sep:
        # Echo the URL only when it cannot hold a password.
        raise ConfigError(f"database URL {url if '@' not in url else '...'!r} has no "
                          f"scheme; {usage}")
    if scheme == "sqlite":
        raise ConfigError(f"database URL {url!r} needs three slashes after 'sqlite:' "
                          "(sqlite:///relative.db, sqlite:////absolute/path.db)")
    raise ConfigError(f"database URL scheme {scheme + ':'!r} is not supported; {usage}")


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
        try:
            connection.execute("COMMIT")
        except BaseException:
            # A failed COMMIT can leave the transaction open; the next BEGIN would fail.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return
    if not connection.autocommit and connection.info.transaction_status == _PG_INTRANS:
        # psycopg would make this block a savepoint of the implicit transaction, and
        # nothing would be committed at its end.
        raise RuntimeError("transaction(): the connection already has an implicit "
                           "transaction open; open it with Database.connect() (autocommit)")
    with connection.transaction():
        yield connection


class WalCheckpointer:
    """Checkpoints a SQLite database's write-ahead log from a thread of its own.

    The consumer's connections turn SQLite's automatic checkpoint off, which otherwise
    runs inside whichever ``COMMIT`` crosses 1,000 WAL pages and makes that handler's
    transaction wait for it (the p99.9 of a claim's COMMIT was 3 ms). A PASSIVE
    checkpoint never blocks writers or readers; durability is unchanged (the WAL is
    synced as before, the checkpoint only copies it into the database file).
    """

    def __init__(self, database: Database, interval: float = 0.5) -> None:
        self.database = database
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tidings-wal-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        connection = self.database.connect()
        try:
            while not self._stop.wait(self.interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # a busy moment: the next round catches up
                    log.debug("WAL checkpoint of %s skipped: %s", self.database.url, exc)
            # A last full one on the way out, so the WAL does not outlive the service.
            with contextlib.suppress(sqlite3.Error):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

"""Database URLs: which ones open, what they say when they do not, placeholders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tidings import db
from tidings.db import open_database, transaction
from tidings.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app:s3cret@db.example.com/shop", "scheme 'mysql:' is not supported"),
        ("postgresql+psycopg://app:s3cret@h/db", "scheme 'postgresql+psycopg:' is not"),
        ("sqlite://orders.db", "needs three slashes"),
        ("orders.db", "has no scheme"),
        ("app:s3cret@localhost/db", "has no scheme"),
        ("", "has no scheme"),
        ("postgresql://", "names no database"),
        ("sqlite:///", "names no database"),
    ],
)
def test_unsupported_urls_say_why_and_keep_passwords_out(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        open_database(url)
    text = str(raised.value)
    assert message in text
    assert "s3cret" not in text
    if "scheme" in message or "no database" in message:
        assert "sqlite:///path/to/file.db" in text and "postgresql://" in text


def test_sqlite_url() -> None:
    database = open_database("sqlite:///var/orders.db")
    assert database.dialect == "sqlite"
    assert database.placeholder == "?"
    assert database.sqlite_path == Path("var/orders.db")
    assert open_database("sqlite:////abs/orders.db").sqlite_path == Path("/abs/orders.db")
    statement = "INSERT INTO t (a, b) VALUES (?, ?)"
    assert database.sql(statement) == statement


@pytest.mark.parametrize("url", ["postgresql://app@localhost:5432/shop",
                                 "postgres://app:pw@db/shop?sslmode=require"])
def test_postgresql_url(url: str) -> None:
    database = open_database(url)
    assert database.dialect == "postgresql"
    assert database.placeholder == "%s"
    assert database.sql("SELECT a FROM t WHERE b = ? AND c = ?") == \
        "SELECT a FROM t WHERE b = %s AND c = %s"


def test_postgresql_without_psycopg_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    db._postgres_connection_class.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"needs the psycopg package") as raised:
            open_database("postgresql://app:s3cret@db.example.com/shop").connect()
        assert "s3cret" not in str(raised.value)
        assert "db.example.com/shop" in str(raised.value)
    finally:
        db._postgres_connection_class.cache_clear()


def test_sqlite_connection_commits_and_rolls_back(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'nested' / 'state.db'}")
    connection = database.connect()
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.execute("CREATE TABLE t (a INTEGER)")
        with transaction(connection):
            connection.executemany(database.sql("INSERT INTO t VALUES (?)"), [(1,), (2,)])
        with pytest.raises(ValueError), transaction(connection):
            connection.execute("INSERT INTO t VALUES (3)")
            raise ValueError
        assert connection.execute("SELECT a FROM t ORDER BY a").fetchall() == [(1,), (2,)]
        assert not connection.in_transaction
    finally:
        connection.close()


def test_transaction_refuses_a_psycopg_connection_inside_an_implicit_transaction() -> None:
    class Info:
        transaction_status = 2  # INTRANS

    class Connection:
        autocommit = False
        info = Info()

        def transaction(self) -> Any:
            raise AssertionError("must not be reached")

    with pytest.raises(RuntimeError, match="implicit"), transaction(Connection()):
        pass

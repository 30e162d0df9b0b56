"""The outbox on PostgreSQL: staged in the caller's transaction, relayed to a real broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from shop_support import Shop, an_order, eventually, headers_of, make_shop, read_all

from tidings.db import Database, open_database, transaction
from tidings.producer.outbox import (
    _RELAY_LOCK,
    TABLE,
    Outbox,
    OutboxRelay,
    OutboxStatus,
    ensure_outbox_table,
    read_status,
)
from tidings.producer.prepare import EventPreparer
from tidings.producer.reliable import ReliableProducer

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server (the outbox table is global)."""
    name = f"tidings_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def shop(tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Shop:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    return make_shop(tmp_path)


def new_relay(database: Database, bootstrap: str, **options: Any) -> OutboxRelay:
    producer = ReliableProducer({"bootstrap.servers": bootstrap}, delivery_timeout=20)
    return OutboxRelay(database, producer, **options)


def drain(relay: OutboxRelay) -> int:
    total = 0
    while count := relay.relay_once():
        total += count
    return total




def idle_in_transaction(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as probe:
        row = probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_500_events_staged_one_transaction_each_all_arrive(
    pg_url: str, shop: Shop, kafka_bootstrap: str
) -> None:
    database = open_database(pg_url)
    assert database.dialect == "postgresql"
    outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
    connection = database.connect()
    outbox.ensure_table(connection)
    outbox.ensure_table(connection)  # idempotent
    began = time.monotonic()
    staged: list[str] = []
    for _ in range(500):
        with transaction(connection):
            staged.append(outbox.stage(connection, an_order()))
    staging_s = time.monotonic() - began

    # A transaction that fails stages nothing, though its INSERT ran.
    with pytest.raises(RuntimeError, match="order rejected"), transaction(connection):
        rolled_back = outbox.stage(connection, an_order())
        raise RuntimeError("order rejected")
    assert read_status(connection).pending == 500
    assert idle_in_transaction(pg_url) == 0, "a lone SELECT must not leave a transaction open"

    relay = new_relay(database, kafka_bootstrap, batch_size=200)
    try:
        began = time.monotonic()
        assert drain(relay) == 500
        relay_s = time.monotonic() - began
        assert relay.relayed == 500
        assert idle_in_transaction(pg_url) == 0
        status = read_status(connection)  # from another connection: the marks committed
        assert (status.pending, status.sent, status.oldest_pending_ms) == (0, 500, None)
        assert relay.status() == status
    finally:
        relay.stop()
        connection.close()

    messages = read_all(kafka_bootstrap, shop.orders_topic, expect=None, timeout=60)
    ids = [headers_of(m)["event-id"] for m in messages]
    assert sorted(ids) == sorted(staged), "every staged event arrived, once"
    assert rolled_back not in ids
    for message in messages:  # BYTEA key and value came back as bytes
        assert isinstance(message.key(), bytes) and message.value()
    print(f"\nstaged 500 in {staging_s:.2f}s, relayed in {relay_s:.2f}s")


def test_status_counts_and_purge(pg_url: str, shop: Shop, kafka_bootstrap: str) -> None:
    database = open_database(pg_url)
    outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
    connection = database.connect()
    outbox.ensure_table(connection)
    try:
        assert read_status(connection) == OutboxStatus(0, 0, None)
        with transaction(connection):
            for _ in range(10):
                outbox.stage(connection, an_order())
        relay = new_relay(database, kafka_bootstrap, keep_sent_for=0)
        try:
            assert drain(relay) == 10
            with transaction(connection):
                later = [outbox.stage(connection, an_order()) for _ in range(5)]
            first_pending = connection.execute(
                f"SELECT created_at_ms FROM {TABLE} WHERE event_id = %s", (later[0],)
            ).fetchone()[0]
            status = read_status(connection)
            assert (status.pending, status.sent) == (5, 10)
            assert status.oldest_pending_ms == first_pending
            time.sleep(0.01)
            assert relay.purge_sent() == 10, "rowcount of the DELETE"
            assert read_status(connection) == OutboxStatus(5, 0, first_pending)
            assert drain(relay) == 5
            assert (read_status(connection).pending, read_status(connection).sent) == (0, 5)
        finally:
            relay.stop()
    finally:
        connection.close()


def test_concurrent_table_creation(pg_url: str) -> None:
    database = open_database(pg_url)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def create() -> None:
        connection = database.connect()
        try:
            start.wait()
            ensure_outbox_table(database, connection)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_relays_racing_lose_nothing_and_send_once_in_order(
    pg_url: str, shop: Shop, kafka_bootstrap: str
) -> None:
    database = open_database(pg_url)
    outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
    writer_connection = database.connect()
    outbox.ensure_table(writer_connection)
    total = 3000
    staged: list[str] = []
    # The same few orders again and again, so each partition holds interleaved keys
    # whose order the relays must keep.
    orders = [an_order() for _ in range(30)]

    def write() -> None:
        for index in range(total):
            with transaction(writer_connection):
                staged.append(outbox.stage(writer_connection, orders[index % len(orders)]))

    relays = [new_relay(database, kafka_bootstrap, batch_size=100, idle_wait=0.01)
              for _ in range(2)]
    writer = threading.Thread(target=write)
    began = time.monotonic()
    for relay in relays:
        relay.start()
    writer.start()
    try:
        writer.join(120)
        # Not the writer's connection: a SELECT there could land inside its transaction.
        probe = database.connect()
        try:
            eventually(lambda: read_status(probe).pending == 0, 120, "the outbox to drain")
        finally:
            probe.close()
    finally:
        for relay in relays:
            relay.stop()
        writer.join()
        writer_connection.close()
    elapsed = time.monotonic() - began

    messages = read_all(kafka_bootstrap, shop.orders_topic, expect=None, timeout=120)
    ids = [headers_of(m)["event-id"] for m in messages]
    assert len(staged) == total
    assert set(ids) == set(staged), "no row lost"
    assert len(ids) == total, f"{len(ids) - total} rows were sent twice"
    assert sum(r.relayed for r in relays) == total
    position = {event_id: index for index, event_id in enumerate(staged)}
    for partition in {m.partition() for m in messages}:
        sequence = [position[headers_of(m)["event-id"]] for m in messages
                    if m.partition() == partition]
        assert sequence == sorted(sequence), f"partition {partition} out of staging order"
    print(f"\n{total} events, 2 relays ({relays[0].relayed} + {relays[1].relayed}) "
          f"in {elapsed:.1f}s")


def test_relay_waits_while_another_holds_the_batch_and_takes_over_when_it_dies(
    pg_url: str, shop: Shop, kafka_bootstrap: str
) -> None:
    database = open_database(pg_url)
    outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
    connection = database.connect()
    outbox.ensure_table(connection)
    with transaction(connection):
        staged = [outbox.stage(connection, an_order()) for _ in range(20)]

    # Another relay mid-batch: its transaction holds the relay lock.
    other = psycopg.connect(pg_url, autocommit=True)
    other.execute("BEGIN")
    other.execute("SELECT pg_advisory_xact_lock(%s)", (_RELAY_LOCK,))
    relay = new_relay(database, kafka_bootstrap)
    try:
        assert relay.relay_once() == 0, "a second relay must not send the same batch"
        assert read_status(connection).pending == 20
        # That relay dies: its connection goes, its transaction rolls back, the lock frees.
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (other.info.backend_pid,))
        eventually(lambda: relay.relay_once() > 0 or read_status(connection).pending == 0,
                 10, "the lock to be released")
        drain(relay)
        assert read_status(connection).pending == 0
    finally:
        relay.stop()
        other.close()
        connection.close()
    messages = read_all(kafka_bootstrap, shop.orders_topic, expect=None, timeout=60)
    assert sorted(headers_of(m)["event-id"] for m in messages) == sorted(staged)

"""The outbox never loses an event: not when its relay is killed, not when Kafka is down."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from shop_support import an_order, eventually, headers_of, make_shop, read_all

from tidings.db import open_database, transaction
from tidings.producer.outbox import Outbox, OutboxRelay, ensure_outbox_table, read_status
from tidings.producer.prepare import EventPreparer
from tidings.producer.reliable import ReliableProducer
from tidings.testing import local_kafka

pytestmark = pytest.mark.integration




def sent_rows(url: str) -> int:
    connection = open_database(url).connect()
    try:
        row = connection.execute("SELECT COUNT(*) FROM tidings_outbox "
                                 "WHERE sent_at_ms IS NOT NULL").fetchone()
        return int(row[0])
    finally:
        connection.close()


def pending_rows(url: str) -> int:
    database = open_database(url)
    connection = database.connect()
    try:
        return read_status(connection).pending
    finally:
        connection.close()


@pytest.mark.timeout(600)  # 10,000 rows paced at 1,000/s, and a relay started per kill
def test_relay_killed_repeatedly_loses_no_event(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    shop = make_shop(tmp_path)
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    database = open_database(url)
    outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
    writer_connection = database.connect()
    ensure_outbox_table(database, writer_connection)
    total = 10_000
    staged: list[str] = []

    def write_orders() -> None:
        # One transaction per order, as the service does: its row and its event together;
        # paced (~1,000/s) so the relay is killed while orders still arrive.
        began = time.monotonic()
        for index in range(total):
            if index == total * 8 // 10:
                # Keep rows coming until the relay has been killed mid-work a few times,
                # however slowly a loaded machine starts it.
                three_kills_mid_relay.wait(timeout=300)
                began = time.monotonic() - index / 1000
            with transaction(writer_connection):
                staged.append(outbox.stage(writer_connection, an_order()))
            if index % 100 == 99:
                time.sleep(max(0.0, began + (index + 1) / 1000 - time.monotonic()))

    relay_command = [sys.executable, "-m", "tidings", "outbox", "relay", "--database", url,
                     "-f", str(shop.topology.path)]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    # A file, not a pipe nobody reads: a chatty relay must never block on its stderr.
    relay_log = (tmp_path / "relay.log").open("ab")

    def start_relay(batch_size: int = 20) -> subprocess.Popen[bytes]:
        # Small batches while it is being killed: each waits for the broker's acks, so the
        # relay works through its backlog for a while instead of in one gulp.
        return subprocess.Popen([*relay_command, "--batch-size", str(batch_size)], env=env,
                                stdout=subprocess.DEVNULL, stderr=relay_log)

    three_kills_mid_relay = threading.Event()
    writer = threading.Thread(target=write_orders)
    writer.start()
    kills = 0
    killed_mid_relay = 0
    rng = random.Random(7)
    try:
        while writer.is_alive() or kills < 3:
            sent_before = sent_rows(url)
            relay = start_relay()
            # Kill it a few batches into its work (it starts on the backlog that built up
            # while no relay ran, however long its start-up took on a loaded machine).
            wanted = sent_before + rng.randint(1, 60)
            deadline = time.monotonic() + 60
            while sent_rows(url) < wanted and relay.poll() is None:
                assert time.monotonic() < deadline, "the relay made no progress in 60 s"
                time.sleep(0.005)
            relayed = relay.poll() is None
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            kills += 1
            # Mid-relay: it was relaying (it had sent rows) and rows were still waiting.
            killed_mid_relay += relayed and pending_rows(url) > 0
            if killed_mid_relay >= 3:
                three_kills_mid_relay.set()
        writer.join()
        relay = start_relay(500)
        eventually(lambda: pending_rows(url) == 0, 120, "the outbox to drain")
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=30)
        writer.join()
        writer_connection.close()

    assert kills >= 3
    assert killed_mid_relay >= 3, "the relay must be killed while it was relaying"
    messages = read_all(kafka_bootstrap, shop.orders_topic, expect=None, timeout=120)
    ids = [headers_of(m)["event-id"] for m in messages]
    assert len(staged) == total
    assert set(ids) == set(staged), "every staged event reached the topic"
    assert len(ids) >= total  # duplicates are allowed (the consumer dedups by event-id)
    print(f"\n{kills} kills ({killed_mid_relay} mid-relay); {len(ids)} messages for "
          f"{total} events ({len(ids) - total} duplicates)")


def test_rows_wait_while_kafka_is_down_and_go_out_when_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_kafka(1) as cluster:
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", cluster.bootstrap)
        shop = make_shop(tmp_path)
        url = f"sqlite:///{tmp_path / 'orders.db'}"
        database = open_database(url)
        outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
        producer = ReliableProducer({"bootstrap.servers": cluster.bootstrap},
                                    delivery_timeout=2)
        relay = OutboxRelay(database, producer, idle_wait=0.1)
        cluster.down()
        relay.start()
        try:
            connection = database.connect()
            with transaction(connection):
                staged = [outbox.stage(connection, an_order()) for _ in range(50)]
            connection.close()
            time.sleep(5)  # several delivery timeouts pass with the broker away
            assert pending_rows(url) == 50, "undelivered rows stay in the outbox"

            cluster.up()
            eventually(lambda: pending_rows(url) == 0, 60, "the outbox to drain")
        finally:
            relay.stop()
        messages = read_all(cluster.bootstrap, shop.orders_topic, expect=None)
        assert {headers_of(m)["event-id"] for m in messages} == set(staged)

"""Broker failures on three brokers (RF 3, min.insync.replicas 2): nothing acknowledged is
lost, nothing takes effect twice, and the services recover by themselves.

The orders are published by a Publisher and by an outbox relay while two groups consume
them, inventory (an event at a time, concurrency 2) and analytics (batches). Every
figure measured is printed (run with ``-s`` to see them, or read the test report).
Run alone with ``pytest -m chaos``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from chaos_support import (
    Shop,
    an_order,
    lag,
    leaders,
    log_event_ids,
    make_shop,
    running,
    runtime_log,
    wait_until,
)

from tidings.consumer.runtime import RuntimeOptions
from tidings.db import open_database, transaction
from tidings.kafka_local import LocalCluster
from tidings.producer.outbox import Outbox, OutboxRelay, ensure_outbox_table, read_status
from tidings.producer.prepare import EventPreparer
from tidings.producer.publisher import Delivery, Publisher, PublishFailed
from tidings.producer.reliable import DeliveryFailed, ReliableProducer

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

GROUPS = ("inventory", "analytics")


class Orders:
    """Publishes orders through a Publisher and an outbox until told to stop; keeps the
    ids of those acknowledged (publisher) or staged (outbox, relayed eventually)."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.acked: list[str] = []
        self.refused = 0
        self.staged: list[str] = []
        self.stop = threading.Event()
        self.outbox_url = f"sqlite:///{shop.root / 'outbox.db'}"
        database = open_database(self.outbox_url)
        self.outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
        self.relay = OutboxRelay(database, ReliableProducer({"bootstrap.servers": shop.bootstrap}),
                                 idle_wait=0.1)
        self._threads = [threading.Thread(target=self._publish, daemon=True),
                         threading.Thread(target=self._stage, daemon=True)]

    def _publish(self) -> None:
        with Publisher(self.shop.topology, "order-service") as publisher:
            while not self.stop.is_set():
                batch = [an_order() for _ in range(10)]
                try:
                    self.acked += [d.event_id for d in publisher.publish_many(batch)]
                except PublishFailed as exc:
                    delivered = [d for d in exc.deliveries if d is not None]
                    self.acked += [d.event_id for d in delivered]
                    self.refused += len(batch) - len(delivered)
                time.sleep(0.1)

    def _stage(self) -> None:
        database = self.outbox.database
        connection = database.connect()
        ensure_outbox_table(database, connection)
        try:
            while not self.stop.is_set():
                with transaction(connection):
                    self.staged += [self.outbox.stage(connection, an_order())
                                    for _ in range(2)]
                time.sleep(0.1)
        finally:
            connection.close()

    def start(self) -> None:
        self.relay.start()
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        connection = self.outbox.database.connect()
        try:
            wait_until(lambda: read_status(connection).pending == 0, 120,
                       "the outbox to drain")
        finally:
            connection.close()
        self.relay.stop()

    @property
    def expected(self) -> set[str]:
        return {*self.acked, *self.staged}


def check_every_effect_once(shop: Shop, expected: set[str]) -> dict[str, int]:
    """Wait until each group has handled every expected event and committed past it;
    assert none took effect twice and none came from nowhere; the duplicates seen."""
    duplicates = {}
    for name in GROUPS:
        wait_until(lambda name=name: expected <= set(shop.effects(name)), 180,
                   f"{name} to handle every acknowledged event")
        wait_until(lambda name=name: lag(shop.bootstrap, shop.group(name), shop.topic) == 0,
                   120, f"{name}'s lag to return to 0")
        effects = shop.effects(name)
        duplicates[name] = sum(n - 1 for n in effects.values())
        assert duplicates[name] == 0, f"{name}: effects taken twice: " + str(
            {e: n for e, n in effects.items() if n > 1})
    return duplicates


def test_leader_kill_9_while_publishing_and_consuming(
        healthy: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", healthy.bootstrap)
    shop = make_shop(tmp_path, healthy.bootstrap)
    kills, failovers, progress_while_down = 3, [], []
    orders = Orders(shop)
    inventory = shop.runtime("inventory")
    analytics = shop.runtime("analytics")
    with running(inventory, analytics):
        orders.start()
        for kill in range(kills):
            wait_until(lambda k=kill: len(shop.effects("inventory")) >= 300 * (k + 1), 120,
                       "inventory to make progress before the next kill")
            victim = leaders(shop.bootstrap, shop.topic)[0]
            began = time.monotonic()
            healthy.kill_node(victim)
            wait_until(lambda v=victim: leaders(shop.bootstrap, shop.topic)[0] not in (v, -1),
                       60, f"partition 0 to get a leader other than node {victim}")
            failovers.append(time.monotonic() - began)
            # While the node is down, the groups go on with the two brokers left.
            before = len(shop.effects("inventory")), len(shop.effects("analytics"))
            wait_until(lambda b=before: len(shop.effects("inventory")) > b[0] + 100
                       and len(shop.effects("analytics")) > b[1] + 100, 120,
                       f"both groups to make progress with node {victim} down")
            progress_while_down.append(len(shop.effects("inventory")) - before[0])
            healthy.up(timeout=120)
        orders.finish()
        duplicates = check_every_effect_once(shop, orders.expected)
    in_log = log_event_ids(shop.bootstrap, shop.topic)
    lost = [event for event in orders.expected if event not in in_log]
    assert lost == [], f"{len(lost)} acknowledged events are not in the log"
    assert set(shop.effects("inventory")) <= set(in_log)
    print(f"\nchaos leader kill -9: {kills} kills; leader moved after "
          f"{', '.join(f'{s:.1f}' for s in failovers)} s; inventory handled "
          f"{progress_while_down} events while a node was down; published "
          f"{len(orders.acked)} acknowledged ({orders.refused} refused) + "
          f"{len(orders.staged)} through the outbox; log holds {sum(in_log.values())} "
          f"records for {len(in_log)} event ids; consumed {len(shop.effects('inventory'))} "
          f"(inventory), {len(shop.effects('analytics'))} (analytics); duplicated effects "
          f"{duplicates}; lost 0")


def test_every_broker_down_then_back(
        healthy: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", healthy.bootstrap)
    shop = make_shop(tmp_path, healthy.bootstrap)
    outbox_url = f"sqlite:///{shop.root / 'outbox.db'}"
    database = open_database(outbox_url)
    outbox = Outbox(database, EventPreparer(shop.topology, "order-service"))
    relay = OutboxRelay(database, ReliableProducer({"bootstrap.servers": shop.bootstrap}),
                        idle_wait=0.1)
    connection = database.connect()
    ensure_outbox_table(database, connection)
    acked: list[Delivery] = []
    staged: list[str] = []
    down_for = 15.0
    with Publisher(shop.topology, "order-service", delivery_timeout=5) as publisher, \
            running(shop.runtime("inventory"), shop.runtime("analytics")):
        relay.start()
        acked += publisher.publish_many([an_order() for _ in range(200)])
        check_every_effect_once(shop, {d.event_id for d in acked})
        began = time.monotonic()
        for node in healthy.nodes:
            healthy.kill_node(node.node_id)
        # A publish with no broker fails, with a clear error, within its delivery timeout.
        asked = time.monotonic()
        with pytest.raises(DeliveryFailed) as failed:
            publisher.publish(an_order())
        refused_after = time.monotonic() - asked
        message = str(failed.value)
        assert "\n" not in message and message, message
        # The outbox takes orders all the same: they wait for the brokers.
        with transaction(connection):
            staged += [outbox.stage(connection, an_order()) for _ in range(50)]
        time.sleep(max(0.0, down_for - (time.monotonic() - began)))
        assert read_status(connection).pending == 50, "nothing can be relayed yet"
        restarted = time.monotonic()
        healthy.up(timeout=120)
        back_after = time.monotonic() - restarted
        # The same publisher and the same runtimes, never restarted, carry on.
        acked += publisher.publish_many([an_order() for _ in range(200)])
        wait_until(lambda: read_status(connection).pending == 0, 120, "the outbox to drain")
        expected = {d.event_id for d in acked} | set(staged)
        duplicates = check_every_effect_once(shop, expected)
        recovered_after = time.monotonic() - restarted
    relay.stop()
    connection.close()
    in_log = log_event_ids(shop.bootstrap, shop.topic)
    assert expected <= set(in_log), "every acknowledged or staged event is in the log"
    print(f"\nchaos all brokers down {down_for:.0f} s: publish refused after "
          f"{refused_after:.1f} s ({message}); cluster back after {back_after:.1f} s; "
          f"every group caught up {recovered_after:.1f} s after the restart began; "
          f"acknowledged {len(acked)} + {len(staged)} staged in the outbox while down; "
          f"duplicated effects {duplicates}; lost 0")


def test_a_handler_slower_than_max_poll_interval_finishes_once_in_the_same_member(
        healthy: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", healthy.bootstrap)
    shop = make_shop(tmp_path, healthy.bootstrap)
    slow_for, max_poll_ms = 10.0, 7000
    runtime = shop.runtime("inventory", options=RuntimeOptions(session_timeout_ms=6000),
                           **{"max.poll.interval.ms": max_poll_ms})
    with runtime_log() as log, running(runtime):
        with Publisher(shop.topology, "order-service") as publisher:
            slow = publisher.publish(an_order(f"slow:{slow_for}"))
            rest = publisher.publish_many([an_order() for _ in range(30)])
        expected = {slow.event_id, *(d.event_id for d in rest)}
        wait_until(lambda: expected <= set(shop.effects("inventory")), 120,
                   "the slow event and the others to be handled")
        wait_until(lambda: lag(shop.bootstrap, shop.group("inventory"), shop.topic) == 0, 60,
                   "the group's lag to return to 0")
        effects = shop.effects("inventory")
        # Counted before the runtime stops, since stopping revokes its partitions.
        group = shop.group("inventory")
        assigned = log.count(f"{group}: assigned")
        thrown_out = log.count(f"{group}: revoked") + log.count(f"{group}: lost")
        history = "\n".join(log.lines[-30:])
    assert effects[slow.event_id] == 1, "the slow event took effect once"
    assert Counter(effects.values()) == {1: len(expected)}, "no event took effect twice"
    assert assigned == 1 and thrown_out == 0, history
    print(f"\nchaos slow handler: {slow_for:.0f} s handler, max.poll.interval.ms "
          f"{max_poll_ms}: {assigned} assignment, {thrown_out} revocations, slow event "
          f"took effect {effects[slow.event_id]} time(s), {len(expected)} events once each")

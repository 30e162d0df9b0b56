"""Exactly-once effects of `tidings run` services, as real OS processes on a real broker.

* kill -9 of the inventory service (at least three times, while it is processing) and of
  the email service: stock, reservations, follow-up events and mails still come out once;
* two instances of a group share the partitions, and one leaving (SIGTERM) hands its
  partitions over without a duplicate effect;
* SIGTERM: stop fetching, finish what is in a handler, commit exactly that, leave the
  group; a restarted instance redoes nothing and processes the rest.
"""

from __future__ import annotations

import random
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from process_support import (
    Chaos,
    Run,
    committed_offsets,
    count_rows,
    fleet,
    rows,
    wait_for_progress,
    wait_until,
)
from runtime_support import Group, make_group
from shop_support import an_order, headers_of, read_all

from consumers.email.smtp_sink import SmtpSink
from schemas import LineItem, OrderCancelled, OrderCreated
from tidings.codec.events import Event
from tidings.producer.publisher import Delivery, Publisher
from tidings.topology import Topology, load_topology, sync

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# -- the shop, with the real inventory and email services -------------------------------------

SHOP = """\
name: it-{p}
defaults: {{partitions: 6, replication_factor: 1}}
topics:
  {p}orders: {{}}
  {p}inventory: {{partitions: 3}}
events:
  order.created:
    topic: {p}orders
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas:OrderCreated
  order.cancelled:
    topic: {p}orders
    schema: schemas/order.cancelled.v1.avsc
    key: order_id
    model: schemas:OrderCancelled
  inventory.reserved:
    topic: {p}inventory
    schema: schemas/inventory.reserved.v1.avsc
    key: order_id
    model: schemas:InventoryReserved
  inventory.rejected:
    topic: {p}inventory
    schema: schemas/inventory.rejected.v1.avsc
    key: order_id
    model: schemas:InventoryRejected
producers:
  order-service: {{publishes: [order.created, order.cancelled]}}
  {p}inventory: {{publishes: [inventory.reserved, inventory.rejected]}}
consumers:
  {p}inventory:
    subscribes: [order.created, order.cancelled]
    handler: consumers.inventory:handle
    retry: [2s]
    dlq: true
    concurrency: 2               # events of one partition finish out of order
  {p}email:
    subscribes: [order.created]
    handler: consumers.email:handle
    retry: [2s]
    concurrency: 2
    transaction: event
"""


def make_shop(root: Path) -> tuple[Topology, str]:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = root / "shop.yaml"
    path.write_text(SHOP.format(p=prefix))
    topology = load_topology(path, check_imports=False)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    return topology, prefix


#: Stock no run of this test can exhaust: orders of these SKUs only are always reserved.
PLENTY = {"MUG": 100_000, "TEE": 100_000, "STICKER": 100_000}
#: The scarce SKU: its orders all look alike (1 poster + 2 stickers) and none is cancelled,
#: so whichever partition runs first, exactly SCARCE_STOCK of them are reserved and the
#: stock they take is the same.
SCARCE, SCARCE_STOCK, SCARCE_ORDERS = "POSTER", 40, 150
#: Every order asks for more than there is: rejected, whatever the order of events.
LIMITED, LIMITED_STOCK = "LIMITED", 5
#: Never stocked at all: rejected.
GHOST = "GHOST"


@dataclass
class Expected:
    """What inventory must end with, computed from the published orders."""

    status: dict[str, str]            # order -> final reservation status (scarce: absent)
    scarce: set[str]                  # orders of the scarce SKU: reserved or rejected
    lines: dict[str, dict[str, int]]  # order -> units per SKU
    cancelled: set[str]
    initial: dict[str, int]

    def on_hand(self, reserved_scarce: int) -> dict[str, int]:
        stock = dict(self.initial)
        for order_id, status in self.status.items():
            if status == "reserved":
                for sku, quantity in self.lines[order_id].items():
                    stock[sku] -= quantity
        stock[SCARCE] -= reserved_scarce
        stock["STICKER"] -= 2 * reserved_scarce
        return stock


def shop_orders(count: int, rng: random.Random) -> tuple[list[Event], Expected]:
    """``count`` orders, cancellations after some of them, and what inventory must make of it.

    Why the expectation is deterministic although partitions run in any order relative to
    each other: one order's events share a key, hence a partition, hence their order; and
    an order's outcome depends on other orders only through the scarce SKU, whose orders
    are interchangeable and never cancelled (a cancelled scarce order would hand its poster
    to whichever scarce order came later, which depends on partition timing).
    """
    created: list[OrderCreated] = []
    expected = Expected({}, set(), {}, set(), {**PLENTY, SCARCE: SCARCE_STOCK,
                                               LIMITED: LIMITED_STOCK})
    kinds = (["scarce"] * SCARCE_ORDERS + ["ghost"] * 50 + ["limited"] * 50
             + ["plenty"] * (count - SCARCE_ORDERS - 100))
    rng.shuffle(kinds)
    for index, kind in enumerate(kinds):
        if kind == "scarce":
            items = [(SCARCE, 1), ("STICKER", 2)]
        elif kind == "ghost":
            items = [("MUG", 1), (GHOST, 1)]
        elif kind == "limited":
            items = [(LIMITED, LIMITED_STOCK + rng.randint(1, 3))]
        else:
            items = [(sku, rng.randint(1, 3)) for sku in rng.sample(sorted(PLENTY),
                                                                    rng.randint(1, 3))]
        order = an_order(
            customer_id=f"c-{index}", customer_email=f"customer{index}@example.com",
            items=[LineItem(sku=sku, quantity=q, unit_price_cents=500) for sku, q in items],
            total_cents=sum(500 * q for _, q in items),
            created_at=datetime.now(UTC))
        created.append(order)
        lines: dict[str, int] = {}
        for sku, quantity in items:
            lines[sku] = lines.get(sku, 0) + quantity
        expected.lines[order.order_id] = lines
        if kind == "scarce":
            expected.scarce.add(order.order_id)
        else:
            expected.status[order.order_id] = "reserved" if kind == "plenty" else "rejected"
    # Cancel a tenth of the non-scarce orders, each some time after its order.
    stream: list[Event] = list(created)
    for order in rng.sample([o for o in created if o.order_id not in expected.scarce],
                            count // 10):
        position = stream.index(order)
        stream.insert(rng.randint(position + 1, len(stream)), OrderCancelled(
            order_id=order.order_id, reason="changed my mind", cancelled_at=datetime.now(UTC)))
        expected.cancelled.add(order.order_id)
        if expected.status[order.order_id] == "reserved":
            expected.status[order.order_id] = "released"
    # And a few orders inventory never sees created: remembered as cancelled, nothing held.
    for _ in range(20):
        order_id = str(uuid.uuid4())
        stream.append(OrderCancelled(order_id=order_id, reason="never placed",
                                     cancelled_at=datetime.now(UTC)))
        expected.status[order_id] = "cancelled"
        expected.cancelled.add(order_id)
    return stream, expected


def publish(topology: Topology, events: Sequence[Event], chunk: int = 1000) -> list[Delivery]:
    deliveries: list[Delivery] = []
    with Publisher(topology, "order-service") as publisher:
        for start in range(0, len(events), chunk):
            deliveries.extend(publisher.publish_many(events[start:start + chunk]))
    return deliveries


# About 2 minutes on a quiet machine, over 5 under load: the email group sends 4,000 mails
# one transaction each. Its waits fail on a stall of 60 s, so this is only a backstop.
@pytest.mark.timeout(900)
def test_kill_9_repeatedly_leaves_every_effect_exactly_once(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    rng = random.Random(20261123)  # the orders: the same every run
    moments = random.Random()  # the kills: wherever they fall (the summary shows where)
    topology, prefix = make_shop(tmp_path)
    inventory_db, email_db = tmp_path / "inventory.db", tmp_path / "email.db"
    stream, expected = shop_orders(5_000, rng)
    # Published straight through the Publisher (idempotent, acks=all): the order topic
    # then holds each event exactly once, so every duplicate seen downstream is the
    # consumers' doing. The first fifth is there before the services start; the rest
    # arrives while they run (and are killed), and the last fifth only once every kill
    # has landed, so that no kill can come after the work is done however fast the
    # services are.
    kills_done = threading.Event()
    first, gated = len(stream) // 5, len(stream) * 4 // 5
    deliveries: list[Delivery] = publish(topology, stream[:first])
    order_event_ids = {e.order_id for e in stream if isinstance(e, OrderCreated)}

    def publish_the_rest() -> None:
        with Publisher(topology, "order-service") as publisher:
            for start in range(first, len(stream), 100):
                if start >= gated:
                    kills_done.wait(timeout=300)
                deliveries.extend(publisher.publish_many(stream[start:start + 100]))
                time.sleep(0.05)  # about 2,000 events/s

    publisher_thread = threading.Thread(target=publish_the_rest, daemon=True)
    inventory_rows = len(expected.status) + len(expected.scarce)
    stock_env = {"INVENTORY_INITIAL_STOCK": ",".join(f"{k}={v}"
                                                     for k, v in expected.initial.items())}
    sink = SmtpSink(0, tmp_path / "mailbox.db")
    sink.start()
    try:
        with fleet(tmp_path, kafka_bootstrap) as processes:
            def start_inventory() -> Run:
                return processes.start(f"{prefix}inventory", topology.path,
                                       f"sqlite:///{inventory_db}", extra_env=stock_env)

            def start_email() -> Run:
                return processes.start(f"{prefix}email", topology.path,
                                       f"sqlite:///{email_db}",
                                       extra_env={"EMAIL_SMTP_PORT": str(sink.port)})

            inventory = Chaos(
                "inventory", start_inventory,
                lambda: count_rows(inventory_db, "SELECT COUNT(*) FROM inventory_reservations"),
                thresholds=sorted(moments.sample(range(300, 3_500), 3)), total=inventory_rows)
            email = Chaos("email", start_email,
                          lambda: count_rows(email_db, "SELECT COUNT(*) FROM email_sent"),
                          thresholds=[moments.randint(300, 1_500)], total=len(order_event_ids))
            mailbox_at_kill: list[int] = []
            inventory.begin()
            email.begin()
            publisher_thread.start()
            deadline = time.monotonic() + 180
            while len(inventory.kills) < 3 or not email.kills:
                assert time.monotonic() < deadline, (inventory.kills, email.kills)
                inventory.step(processes, min_progress=100)
                kills = len(email.kills)
                email.step(processes, min_progress=100)
                if len(email.kills) > kills:
                    time.sleep(0.5)  # a DATA already sent would still be stored
                    mailbox_at_kill.append(len(sink.messages()))
                time.sleep(0.05)
            kills_done.set()
            publisher_thread.join(timeout=300)
            assert len(deliveries) == len(stream), "every event was published"
            order_event_ids = {d.event_id for d, e in zip(deliveries, stream, strict=True)
                               if isinstance(e, OrderCreated)}
            runs = [r for r in (inventory.run, email.run) if r is not None]
            wait_for_progress(inventory.progress, inventory_rows, 60,
                              "inventory to decide every order", runs)
            wait_until(lambda: count_rows(inventory_db, "SELECT COUNT(*) FROM tidings_outbox "
                                          "WHERE sent_at_ms IS NULL") == 0, 60,
                       "inventory's outbox to drain", runs)
            wait_for_progress(email.progress, len(order_event_ids), 60,
                              "every confirmation to be sent", runs)
            for run in runs:
                code, _ = processes.terminate(run, 60)
                assert code == 0, run.text()[-3000:]
    finally:
        sink.stop()

    # -- kills
    assert len(inventory.kills) >= 3 and inventory.mid_processing >= 3, inventory.kills
    assert email.mid_processing >= 1, email.kills

    # -- stock and reservations
    statuses = dict(rows(inventory_db, "SELECT order_id, status FROM inventory_reservations"))
    assert len(statuses) == inventory_rows, "one reservation-or-rejection row per order"
    for order_id, status in expected.status.items():
        assert statuses[order_id] == status, order_id
    scarce = Counter(statuses[o] for o in expected.scarce)
    assert scarce == {"reserved": SCARCE_STOCK, "rejected": SCARCE_ORDERS - SCARCE_STOCK}
    on_hand = dict(rows(inventory_db, "SELECT sku, on_hand FROM inventory_stock"))
    assert on_hand == expected.on_hand(reserved_scarce=SCARCE_STOCK)
    held: Counter[str] = Counter()
    for order_id, sku, quantity in rows(
            inventory_db, "SELECT l.order_id, l.sku, l.quantity FROM inventory_reservation_lines "
            "l JOIN inventory_reservations r USING (order_id) WHERE r.status = 'reserved'"):
        assert order_id not in expected.cancelled
        held[sku] += quantity
    for sku, initial in expected.initial.items():
        assert on_hand[sku] >= 0
        assert initial == on_hand[sku] + held[sku], f"{sku}: units created or lost"

    # -- inventory's follow-up events: one event id per decided order (copies allowed)
    messages = read_all(kafka_bootstrap, f"{prefix}inventory", expect=None, timeout=60)
    ids_by_order: dict[str, set[str]] = {}
    types: dict[str, str] = {}
    for message in messages:
        headers = headers_of(message)
        order_id = (message.key() or b"").decode()
        ids_by_order.setdefault(order_id, set()).add(headers["event-id"])
        types[order_id] = headers["event-type"]
    decided = {o for o, s in statuses.items() if s != "cancelled"}
    assert set(ids_by_order) == decided
    assert all(len(ids) == 1 for ids in ids_by_order.values()), "one decision per order"
    for order_id in decided:
        wanted = "inventory.rejected" if statuses[order_id] == "rejected" \
            else "inventory.reserved"
        assert types[order_id] == wanted, order_id
    staged = {r[0] for r in rows(inventory_db, "SELECT event_id FROM tidings_outbox")}
    assert {i for ids in ids_by_order.values() for i in ids} == staged
    raw_copies = len(messages) - len(decided)
    # No event failed its way into the dead-letter topic (a retried order.created could
    # be overtaken by its cancellation, which the expectation above does not model).
    dead = read_all(kafka_bootstrap, f"{prefix}orders.{prefix}inventory.dlq", expect=None)
    assert dead == []

    # -- mails: one per order; a copy only from the documented window (accepted, then killed
    # before the commit), which is at most one mail per kill (the handler's transaction
    # holds SQLite's write lock, so one mail at a time is between accept and commit).
    mails = sink.messages()
    counted = Counter(m.message_id for m in mails)
    assert set(counted) == {f"<{event_id}@tidings>" for event_id in order_event_ids}
    resent = {mid: n for mid, n in counted.items() if n > 1}
    assert len(resent) <= len(email.kills), resent
    for message_id, copies in resent.items():
        assert copies == 2, message_id
        first = next(i for i, m in enumerate(mails) if m.message_id == message_id)
        assert any(at - 4 <= first < at for at in mailbox_at_kill), (
            f"{message_id} was sent twice, not by a kill between accept and commit")
    print(f"\ninventory: {inventory.summary()}; email: {email.summary()}\n"
          f"inventory topic: {len(messages)} messages for {len(decided)} decisions, "
          f"{len(decided)} distinct event ids ({raw_copies} relay copies); "
          f"mails: {len(mails)} for {len(counted)} Message-IDs "
          f"({len(resent)} resent in the accept-commit window)")


# -- a test handler group, run as processes ----------------------------------------------------


def published_orders(group: Group, orders: Sequence[OrderCreated]) -> list[Delivery]:
    with Publisher(group.topology, "order-service") as publisher:
        return publisher.publish_many(orders)


def effect_ids(group: Group) -> Counter[str]:
    return Counter(e[0] for e in group.effects())


def assignments(run: Run) -> list[int]:
    """How many partitions each of the run's assignments gave it, in order."""
    return [int(n) for n in re.findall(r"assigned (\d+) partition", run.text())]


def holds_partitions(run: Run) -> int:
    """How many partitions the run's latest assignment gave it (0 before any)."""
    history = assignments(run)
    return history[-1] if history else 0


def test_two_instances_share_the_partitions_and_one_leaving_duplicates_nothing(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path, concurrency=2)
    # One in ten is slow (50 ms in the handler): enough to stop one instance midway.
    orders = [an_order(customer_id="slow" if i % 10 == 0 else f"ok:{i}") for i in range(2_000)]
    # The second part is published once the first instance is gone, so that its former
    # partitions certainly have events left for the remaining instance.
    before, after = orders[:1_200], orders[1_200:]
    shutdown_timeout = 20.0
    with fleet(tmp_path, kafka_bootstrap) as processes:
        first = processes.start(group.name, group.topology.path, group.database_url,
                                shutdown_timeout=shutdown_timeout)
        second = processes.start(group.name, group.topology.path, group.database_url,
                                 shutdown_timeout=shutdown_timeout)
        wait_until(lambda: holds_partitions(first) and holds_partitions(second), 60,
                   "both instances to hold partitions", [first, second])
        shared = holds_partitions(second)
        deliveries = published_orders(group, before)
        wait_until(lambda: first.metric("tidings_events_processed_total") > 0
                   and second.metric("tidings_events_processed_total") > 0, 60,
                   "both instances to process events", [first, second])
        wait_until(lambda: len(group.effects()) >= 500, 60, "some events", [first, second])
        stopped_at = len(group.effects())
        code, took = processes.terminate(first, shutdown_timeout + 30)
        deliveries += published_orders(group, after)
        wait_until(lambda: len(group.effects()) == len(orders), 120,
                   "the remaining instance to finish", [second])
        time.sleep(1)  # a stray redelivery would show up now
        second_code, _ = processes.terminate(second, shutdown_timeout + 30)
    assert code == 0, first.text()[-3000:]
    assert second_code == 0, second.text()[-3000:]
    assert took < shutdown_timeout, f"SIGTERM took {took:.1f}s"
    assert stopped_at < len(before), "the instance was stopped midway"
    effects = effect_ids(group)
    assert set(effects) == {d.event_id for d in deliveries}
    assert [i for i, n in effects.items() if n > 1] == [], "an effect happened twice"
    counts = [first.done_counts(), second.done_counts()]
    assert all(c.get("processed", 0) > 0 for c in counts), counts
    assert sum(c.get("processed", 0) for c in counts) == len(orders), counts
    assert sum(c.get("duplicate", 0) for c in counts) == 0, counts
    alone = holds_partitions(second)
    assert 0 < shared < alone, f"the remaining instance took the partitions over: {shared=}"
    print(f"\nfirst instance: SIGTERM at {stopped_at} effects, exited in {took:.1f}s; "
          f"partitions of the other: {shared} -> {alone}; done: {counts}")


def test_sigterm_commits_exactly_what_was_handled_and_a_restart_does_the_rest(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path, concurrency=1)  # so each partition is handled in order
    # 400 slow events (50 ms each, one at a time in SQLite): ~20 s of work, all fetched at
    # once, far more than the 5 s the instance gets to shut down. Past those 5 s what sits
    # in its queue must not be started, and nothing may run after the final commit.
    orders = [an_order(customer_id="slow") for _ in range(400)]
    shutdown_timeout = 5.0
    with fleet(tmp_path, kafka_bootstrap) as processes:
        deliveries = published_orders(group, orders)
        run = processes.start(group.name, group.topology.path, group.database_url,
                              shutdown_timeout=shutdown_timeout)
        wait_until(lambda: len(group.effects()) >= 40, 60, "some events handled", [run])
        code, took = processes.terminate(run, shutdown_timeout + 30)
        handled = effect_ids(group)
        committed = committed_offsets(kafka_bootstrap, group.name, group.topic)
        restarted = processes.start(group.name, group.topology.path, group.database_url)
        wait_until(lambda: len(group.effects()) == len(orders), 90, "the rest", [restarted])
        time.sleep(1)
        duplicates = restarted.metric("tidings_events_duplicates_skipped_total")
        processed = restarted.metric("tidings_events_processed_total")
        restart_code, _ = processes.terminate(restarted, 60)
    assert code == 0, run.text()[-3000:]
    assert restart_code == 0, restarted.text()[-3000:]
    # The timeout, plus the 50 ms event in its handler, plus leaving the group.
    assert took < shutdown_timeout + 5, f"SIGTERM took {took:.1f}s"
    assert len(handled) < len(orders), "stopped with work left"
    # The committed offsets are exactly the handled events: nothing handled is left
    # uncommitted (it would be redone) and nothing unhandled is committed (it would be lost).
    done_at = {(d.partition, d.offset) for d in deliveries if d.event_id in handled}
    assert done_at == {(p, o) for p, end in committed.items() for o in range(max(end, 0))}
    assert duplicates == 0, "the restarted instance found work already done"
    assert processed == len(orders) - len(handled)
    effects = effect_ids(group)
    assert set(effects) == {d.event_id for d in deliveries}
    assert max(effects.values()) == 1
    print(f"\nSIGTERM after {len(handled)} events: exited in {took:.1f}s; "
          f"restart processed {processed:.0f}, skipped {duplicates:.0f} duplicates")


# -- kill -9 in the middle of batches ----------------------------------------------------------

LEDGER = '''
"""Effects in ctx.db, one transaction per batch (the default): a ledger row per event."""


def setup(connection, database):
    connection.execute("CREATE TABLE IF NOT EXISTS ledger (event_id TEXT, customer TEXT, "
                       "cents INTEGER)")
    connection.execute("CREATE TABLE IF NOT EXISTS balance (customer TEXT PRIMARY KEY, "
                       "cents INTEGER NOT NULL)")


def handle(event, ctx):
    ctx.db.execute(ctx.sql("INSERT INTO ledger VALUES (?, ?, ?)"),
                   (ctx.event_id, event.customer_id, event.total_cents))
    ctx.db.execute(ctx.sql(
        "INSERT INTO balance VALUES (?, ?) ON CONFLICT (customer) "
        "DO UPDATE SET cents = cents + excluded.cents"), (event.customer_id, event.total_cents))
'''

LEDGER_TOPOLOGY = """\
name: it-{p}
defaults: {{partitions: 6, replication_factor: 1}}
topics:
  {p}orders: {{}}
events:
  order.created:
    topic: {p}orders
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas:OrderCreated
producers:
  order-service: {{publishes: [order.created]}}
consumers:
  {p}ledger:
    subscribes: [order.created]
    handler: {module}:handle
    retry: [1s]
    concurrency: 2
"""


def test_kill_9_in_the_middle_of_batches_of_10000_events_with_duplicates_and_poison(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka import Producer

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    shutil.copytree(REPO / "schemas", tmp_path / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    module = f"ledger_{prefix.strip('-')}"
    (tmp_path / f"{module}.py").write_text(LEDGER)
    path = tmp_path / "topology.yaml"
    path.write_text(LEDGER_TOPOLOGY.format(p=prefix, module=module))
    topology = load_topology(path, check_imports=False)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    group, topic = f"{prefix}ledger", f"{prefix}orders"
    database = tmp_path / "ledger.db"
    rng = random.Random(10_000)
    orders = [an_order(customer_id=f"c-{rng.randrange(300)}", total_cents=price,
                       items=[LineItem(sku="SKU-1", quantity=1, unit_price_cents=price)])
              for price in (rng.randrange(100, 50_000) for _ in range(10_000))]
    expected: Counter[str] = Counter()
    for order in orders:
        expected[order.customer_id] += order.total_cents
    raw = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    kills_done = threading.Event()
    deliveries: list[Delivery] = []
    poison = duplicates = 0

    def publish_while_killed() -> None:
        # Paced (~2,500/s), the last fifth held back until the kills have landed: however
        # fast the service, every kill comes while batches are being handled.
        nonlocal poison, duplicates
        with Publisher(topology, "order-service") as publisher:
            for start in range(0, len(orders), 250):
                if start >= 8_000:
                    kills_done.wait(timeout=300)
                prepared = [publisher.prepare(o) for o in orders[start:start + 250]]
                chunk = publisher.send_all(prepared)
                deliveries.extend(chunk)
                # Byte-for-byte copies of a few, and some poison, mixed into the stream.
                for index in rng.sample(range(len(chunk)), 5):
                    copy = prepared[index]
                    raw.produce(topic, copy.value, key=copy.key, headers=copy.headers,
                                partition=chunk[index].partition)
                    duplicates += 1
                if start % 1000 == 0:
                    raw.produce(topic, b"\xc3\x01 not an event", key=b"poison")
                    poison += 1
                assert raw.flush(30) == 0
                time.sleep(0.1)

    def progress() -> int:
        return count_rows(database, "SELECT COUNT(*) FROM ledger")

    publisher_thread = threading.Thread(target=publish_while_killed, daemon=True)
    with fleet(tmp_path, kafka_bootstrap) as processes:
        chaos = Chaos("ledger", lambda: processes.start(group, path, f"sqlite:///{database}"),
                      progress, thresholds=sorted(rng.sample(range(1_000, 7_000), 3)),
                      total=10_000)
        chaos.begin()
        publisher_thread.start()
        deadline = time.monotonic() + 240
        while len(chaos.kills) < 3:
            assert time.monotonic() < deadline, chaos.kills
            chaos.step(processes, min_progress=300)
            time.sleep(0.02)
        kills_done.set()
        publisher_thread.join(timeout=300)
        assert chaos.run is not None
        wait_until(lambda: progress() >= 10_000, 180, "every event applied", [chaos.run])
        time.sleep(2)  # a stray second application would show up now
        code, _ = processes.terminate(chaos.run, 60)
        assert code == 0, chaos.run.text()[-3000:]

    applied = Counter(r[0] for r in rows(database, "SELECT event_id FROM ledger"))
    assert chaos.mid_processing >= 3, chaos.summary()
    assert [i for i, n in applied.items() if n > 1] == [], "an event applied twice"
    assert set(applied) == {d.event_id for d in deliveries}
    assert dict(rows(database, "SELECT customer, cents FROM balance")) == expected
    dead = read_all(kafka_bootstrap, f"{topic}.{group}.dlq", expect=None)
    places = {(headers_of(m)["original-partition"], headers_of(m)["original-offset"])
              for m in dead}
    assert len(places) == poison, "every poison message dead-lettered"
    print(f"\nbatched: {chaos.summary()}; {len(deliveries)} events + {duplicates} byte-for-byte "
          f"duplicates + {poison} poison; applied once each; DLQ {len(dead)} letters for "
          f"{len(places)} poison messages")


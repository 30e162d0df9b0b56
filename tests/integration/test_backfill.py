"""A ``--reprocess`` backfill applies each event exactly once more, on a real broker.

The scenario of a new team's own group (loyalty points per order, retry tiers, a DLQ and
a table in ``ctx.db``): orders with byte-for-byte duplicates and some garbage, the
points wiped, then rebuilt by ``tidings replay --reprocess`` while the service is killed
with SIGKILL mid-backfill and the copier is killed and resumed. The totals must come out
exact, and a second reprocess replay must apply every event once more.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message, Producer
from process_support import Chaos, Fleet, count_rows, fleet, rows, wait_until
from runtime_support import make_group, running
from shop_support import an_order, eventually, headers_of, read_all

from schemas import LineItem
from tidings.cli import main
from tidings.producer.publisher import Delivery, Publisher
from tidings.replay import Cluster
from tidings.topology import Topology, load_topology, sync

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def republish_raw(bootstrap: str, topic: str, messages: list[Message]) -> None:
    """Write ``messages`` again byte for byte (value, key, headers, partition)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for message in messages:
        producer.produce(topic, message.value(), key=message.key(), headers=message.headers(),
                         partition=message.partition())
    assert producer.flush(30) == 0


def replay_args(topology: Topology, group: str, topic: str, *extra: str) -> list[str]:
    return ["replay", "-f", str(topology.path), "--group", group, "--topic", topic,
            "--from", "-1h", "--reprocess", *extra]


def test_a_reprocess_replay_applies_duplicates_in_its_range_once_and_a_second_once_more(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path, concurrency=2)
    (tmp_path / "batch").mkdir()
    batch = make_group(tmp_path / "batch", batch=True)
    for target in (group, batch):
        with Publisher(target.topology, "order-service") as publisher:
            deliveries = publisher.publish_many([an_order() for _ in range(40)])
        originals = read_all(kafka_bootstrap, target.topic, expect=40)
        republish_raw(kafka_bootstrap, target.topic, originals[:12])  # 12 duplicates
        ids = {d.event_id for d in deliveries}
        with running(target.runtime(commit_interval=0.2)):
            eventually(lambda t=target: len(t.effects()) == 40, 30, "the live 40")
            # The backfill: effects wiped, the whole range reprocessed (52 copies).
            connection = sqlite_of(target.database_url)
            connection.execute("DELETE FROM effects")
            connection.close()
            assert main(replay_args(target.topology, target.name, target.topic,
                                    "--yes", "--no-progress")) == 0
            assert "Copied 52 event(s)" in capsys.readouterr().out
            eventually(lambda t=target: len(t.effects()) >= 40, 30, "the backfill")
            settle(lambda t=target: len(t.effects()))
            first = Counter(e[0] for e in target.effects())
            assert set(first) == ids and max(first.values()) == 1, \
                f"a duplicate in the range was applied twice: {first.most_common(3)}"

            # A second reprocess replay is a new scope: every event once more.
            assert main(replay_args(target.topology, target.name, target.topic,
                                    "--yes", "--no-progress")) == 0
            capsys.readouterr()
            eventually(lambda t=target: len(t.effects()) >= 80, 30, "the second backfill")
            settle(lambda t=target: len(t.effects()))
            second = Counter(e[0] for e in target.effects())
            assert set(second) == ids and set(second.values()) == {2}, second.most_common(3)


def sqlite_of(url: str) -> sqlite3.Connection:
    return sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)


def settle(measure: Callable[[], Any], quiet: float = 1.5, timeout: float = 60) -> None:
    """Wait until ``measure()`` has not changed for ``quiet`` seconds: a stray extra
    delivery would show up in that time."""
    deadline = time.monotonic() + timeout
    last, since = measure(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "never settled"
        time.sleep(0.1)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()


# -- the loyalty group of the issue, as an OS process killed mid-backfill ------------------

LOYALTY = '''
"""Loyalty points per order: one point per whole currency unit of the order total."""
import time


def setup(connection, database):
    connection.execute(
        "CREATE TABLE IF NOT EXISTS loyalty_points ("
        "customer_id TEXT PRIMARY KEY, points INTEGER NOT NULL)")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS loyalty_ledger (event_id TEXT, customer_id TEXT, "
        "points INTEGER)")


def handle(event, ctx):
    time.sleep(0.002)  # some work per event, so that kills land in the middle
    points = event.total_cents // 100
    ctx.db.execute(ctx.sql(
        "INSERT INTO loyalty_points VALUES (?, ?) ON CONFLICT (customer_id) "
        "DO UPDATE SET points = points + excluded.points"), (event.customer_id, points))
    ctx.db.execute(ctx.sql("INSERT INTO loyalty_ledger VALUES (?, ?, ?)"),
                   (ctx.event_id, event.customer_id, points))
'''

TOPOLOGY = """\
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
  {p}loyalty:
    subscribes: [order.created]
    handler: {module}:handle
    retry: [1s, 2s]
    dlq: true
"""


def test_a_backfill_killed_three_times_mid_way_and_its_copier_once_gives_exact_totals(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    shutil.copytree(REPO / "schemas", tmp_path / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    module = f"loyalty_{prefix.strip('-')}"
    (tmp_path / f"{module}.py").write_text(LOYALTY)
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.format(p=prefix, module=module))
    topology = load_topology(path, check_imports=False)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    group, topic = f"{prefix}loyalty", f"{prefix}orders"
    dlq = f"{topic}.{group}.dlq"
    database = tmp_path / "loyalty.db"
    url = f"sqlite:///{database}"

    rng = random.Random(9)
    prices = [rng.randrange(100, 20_000) for _ in range(3000)]
    orders = [an_order(customer_id=f"c-{rng.randrange(200)}", total_cents=price,
                       items=[LineItem(sku="SKU-1", quantity=1, unit_price_cents=price)])
              for price in prices]
    with Publisher(topology, "order-service") as publisher:
        deliveries: list[Delivery] = []
        for start in range(0, len(orders), 1000):
            deliveries.extend(publisher.publish_many(orders[start:start + 1000]))
    originals = read_all(kafka_bootstrap, topic, expect=3000, timeout=60)
    republish_raw(kafka_bootstrap, topic, rng.sample(originals, 25))  # byte-for-byte copies
    garbage = Producer({"bootstrap.servers": kafka_bootstrap})
    for index in range(4):
        garbage.produce(topic, b"not an event %d" % index, key=b"garbage")
    assert garbage.flush(10) == 0
    expected: Counter[str] = Counter()
    for order in orders:
        expected[order.customer_id] += order.total_cents // 100
    ids = {d.event_id for d in deliveries}

    def points() -> dict[str, int]:
        return dict(rows(database, "SELECT customer_id, points FROM loyalty_points"))

    def ledger() -> int:
        return count_rows(database, "SELECT COUNT(*) FROM loyalty_ledger")

    with fleet(tmp_path, kafka_bootstrap) as processes:
        live = processes.start(group, path, url)
        wait_until(lambda: ledger() == 3000, 180, "the live run", [live])
        wait_until(lambda: len(read_all(kafka_bootstrap, dlq, expect=None)) >= 4, 60,
                   "the garbage in the DLQ", [live])
        assert points() == expected
        # The operator wipes the points (the service keeps running) and backfills.
        connection = sqlite_of(url)
        connection.execute("DELETE FROM loyalty_points")
        connection.execute("DELETE FROM loyalty_ledger")
        connection.close()

        chaos = Chaos("loyalty", lambda: processes.start(group, path, url), ledger,
                      thresholds=sorted(rng.sample(range(300, 2700), 3)), total=3000)
        chaos.run = live
        chaos.run_began_at = 0
        copier = copy_with_one_kill(topology, group, topic, processes)
        while len(chaos.kills) < len(chaos.thresholds) and ledger() < 3000:
            chaos.step(processes, min_progress=50)
            time.sleep(0.05)
        assert copier.wait(timeout=300) == 0, copier.stderr.read().decode()[-2000:] \
            if copier.stderr else ""
        runs = [chaos.run] if chaos.run is not None else []
        wait_until(lambda: ledger() >= 3000, 300, "the backfill to finish", runs)
        settle(ledger, quiet=3.0)

    applied = Counter(r[0] for r in rows(database, "SELECT event_id FROM loyalty_ledger"))
    twice = [event_id for event_id, n in applied.items() if n > 1]
    assert len(chaos.kills) >= 3 and chaos.mid_processing >= 3, chaos.summary()
    assert twice == [], f"{len(twice)} events applied twice by the backfill"
    assert set(applied) == ids
    assert points() == expected
    copies = read_all(kafka_bootstrap, f"{topic}.{group}.replay", expect=None, timeout=60)
    copied_ids = Counter(i for i in (headers_of(m).get("event-id") for m in copies) if i)
    print(f"\nbackfill: {chaos.summary()}; {len(copies)} copies of the 3,029 records in the "
          f"range ({sum(n - 1 for n in copied_ids.values() if n > 1)} repeated event ids, all "
          f"from the source's byte-for-byte duplicates); points exact for {len(expected)} "
          "customers, 0 events applied twice")


def copy_with_one_kill(topology: Topology, group: str, topic: str,
                       processes: Fleet) -> subprocess.Popen[bytes]:
    """Start the reprocess copy, SIGKILL it once mid-copy, and start it again (it resumes);
    returns the second run, still copying."""
    replay_topic = f"{topic}.{group}.replay"
    args = [sys.executable, "-m", "tidings", *replay_args(topology, group, topic, "--yes",
                                                          "--no-progress")]
    env = {**os.environ}
    cluster = Cluster(topology)

    def copied() -> int:
        return sum(high for _, high in cluster.watermarks(replay_topic, list(range(6))).values())

    first = subprocess.Popen([*args, "--rate", "400"], env=env, cwd=topology.root,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        eventually(lambda: copied() >= 500, 60, "the copier to copy 500")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert copied() < 3029, "the copier was killed mid-copy"
    return subprocess.Popen([*args, "--rate", "600"], env=env, cwd=topology.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_backfill_split_over_two_copiers_one_killed_copies_and_applies_each_event_once(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path)  # 3 partitions
    with Publisher(group.topology, "order-service") as publisher:
        ids = {d.event_id for d in publisher.publish_many([an_order() for _ in range(300)])}
    replay_topic = f"{group.topic}.{group.name}.replay"
    cluster = Cluster(group.topology)
    with running(group.runtime(commit_interval=0.2)):
        eventually(lambda: len(group.effects()) == 300, 30, "the live 300")
        connection = sqlite_of(group.database_url)
        connection.execute("DELETE FROM effects")
        connection.close()
        base = [sys.executable, "-m", "tidings", *replay_args(
            group.topology, group.name, group.topic, "--yes", "--no-progress")]

        def copier(share: str, rate: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen([*base, "--partitions", share, "--rate", rate],
                                    cwd=tmp_path, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)

        first, second = copier("0", "200"), copier("1-2", "60")
        try:
            eventually(lambda: sum(cluster.watermarks(replay_topic, [1, 2])[p][1]
                                   for p in (1, 2)) >= 20 or second.poll() is not None, 60,
                       "the second share to copy")
        finally:
            second.send_signal(signal.SIGKILL)
            second.wait(timeout=10)
        assert second.returncode == -signal.SIGKILL, \
            second.stderr.read().decode()[-2000:] if second.stderr else ""
        resumed = copier("1-2", "400")
        for process in (first, resumed):
            assert process.wait(timeout=120) == 0, process.stderr.read().decode()[-2000:] \
                if process.stderr else ""
        eventually(lambda: len(group.effects()) >= 300, 60, "the backfill")
        settle(lambda: len(group.effects()))
    copies = read_all(kafka_bootstrap, replay_topic, expect=None)
    copied = Counter(headers_of(m)["event-id"] for m in copies)
    assert set(copied) == ids and set(copied.values()) == {1}, "each event copied once"
    applied = Counter(e[0] for e in group.effects())
    assert set(applied) == ids and set(applied.values()) == {1}
    shares = {headers_of(m)["replay-id"] for m in copies}
    assert len(shares) == 2, "two shares, each a replay of its own"

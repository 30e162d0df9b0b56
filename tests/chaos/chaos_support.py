"""A replicated shop on the chaos cluster: groups run in threads, effects counted per event."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from schemas import LineItem, OrderCreated
from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.kafka_clients import admin_client
from tidings.topology import Topology, load_topology, sync

REPO = Path(__file__).resolve().parents[2]


def an_order(customer: str = "c-42") -> OrderCreated:
    """An order of its own id; ``customer`` ``slow:<seconds>`` makes ``handle`` sleep."""
    return OrderCreated(
        order_id=str(uuid.uuid4()), customer_id=customer, customer_email="ada@example.com",
        currency="EUR", items=[LineItem(sku="SKU-1", quantity=2, unit_price_cents=1250)],
        total_cents=2500, created_at=datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC))

HANDLERS = '''
"""Chaos handlers: one effects row per handled event, in the runtime's transaction."""
import time


def setup(connection, database):
    connection.execute("CREATE TABLE IF NOT EXISTS effects (event_id TEXT, order_id TEXT)")


def handle(event, ctx):
    if event.customer_id.startswith("slow:"):
        time.sleep(float(event.customer_id.split(":")[1]))
    ctx.db.execute(ctx.sql("INSERT INTO effects VALUES (?, ?)"), (ctx.event_id, event.order_id))


def handle_batch(events, ctx):
    for event, item in zip(events, ctx.items):
        ctx.db.execute(ctx.sql("INSERT INTO effects VALUES (?, ?)"),
                       (item.meta.event_id, event.order_id))
'''

SHOP = """\
name: chaos-{p}
defaults:
  partitions: 6
  replication_factor: 3
  config: {{min.insync.replicas: 2}}
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
  {p}inventory:
    subscribes: [order.created]
    handler: {module}:handle
    retry: [1s]
    concurrency: 2
  {p}analytics:
    subscribes: [order.created]
    handler: {module}:handle_batch
    batch: {{max_events: 200, max_wait: 500ms}}
"""


@dataclass
class Shop:
    root: Path
    prefix: str
    topology: Topology
    bootstrap: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}orders"

    def group(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def database(self, name: str) -> Path:
        return self.root / f"{name}.db"

    def runtime(self, name: str, *, options: RuntimeOptions | None = None,
                **kafka: Any) -> ConsumerRuntime:
        setup = resolve_group(self.topology, self.group(name),
                              open_database(f"sqlite:///{self.database(name)}"))
        return ConsumerRuntime(setup, {"bootstrap.servers": self.bootstrap, **kafka},
                               options or RuntimeOptions())

    def effects(self, name: str) -> Counter[str]:
        """How many times each event took effect in group ``name``."""
        return Counter(event for _, event in self.effect_rows(name))

    def effect_rows(self, name: str) -> list[tuple[int, str]]:
        """Group ``name``'s effects as (rowid, event id). Rows are only ever inserted, one
        writer at a time, so a rowid says when an effect was committed: every effect
        visible when ``last_effect`` returned N has a rowid of at most N."""
        return self._query(name, "SELECT rowid, event_id FROM effects", [])

    def handled(self, name: str) -> int:
        """How many effects group ``name`` has taken, copies included (cheap progress)."""
        return int(self._query(name, "SELECT COUNT(*) FROM effects", [(0,)])[0][0])

    def last_effect(self, name: str) -> int:
        """The rowid of the latest committed effect of group ``name`` (0: none yet)."""
        return int(self._query(name, "SELECT COALESCE(MAX(rowid), 0) FROM effects",
                               [(0,)])[0][0])

    def _query(self, name: str, sql: str, empty: list[Any]) -> list[Any]:
        path = self.database(name)
        if not path.exists():
            return empty
        connection = sqlite3.connect(path, timeout=30)
        try:
            return list(connection.execute(sql))
        except sqlite3.OperationalError:  # the table is not there yet
            return empty
        finally:
            connection.close()


def make_shop(root: Path, bootstrap: str) -> Shop:
    prefix = f"c{uuid.uuid4().hex[:6]}-"
    if not (root / "schemas").exists():
        shutil.copytree(REPO / "schemas", root / "schemas",
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    module = f"chaos_handlers_{prefix.strip('-')}"
    (root / f"{module}.py").write_text(HANDLERS)
    path = root / "topology.yaml"
    path.write_text(SHOP.format(p=prefix, module=module))
    import sys
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    topology = load_topology(path)
    view = sync.connect(topology)  # KAFKA_BOOTSTRAP_SERVERS: the test sets it
    sync.apply(view, sync.plan(view))
    return Shop(root, prefix, topology, bootstrap)


@dataclass(eq=False)  # a logging.Handler must stay hashable
class RuntimeLog(logging.Handler):
    """Collects the runtime's log lines (it runs in threads of this process)."""

    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


@contextmanager
def runtime_log() -> Iterator[RuntimeLog]:
    handler = RuntimeLog()
    logger = logging.getLogger("tidings")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@contextmanager
def running(*runtimes: ConsumerRuntime) -> Iterator[None]:
    """Run each runtime in a thread; stop them (gracefully) when the block ends."""
    failures: list[BaseException] = []

    def run(runtime: ConsumerRuntime) -> None:
        try:
            runtime.run()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in runtimes]
    for thread in threads:
        thread.start()
    try:
        yield
        assert not failures, f"a runtime stopped by itself: {failures[0]!r}"
    finally:
        for runtime in runtimes:
            runtime.stop()
        for thread in threads:
            thread.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "a runtime did not stop"
    if failures:
        raise failures[0]


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               status: Callable[[], str] | None = None) -> Any:
    """``condition()`` once truthy; fails after ``timeout``, saying ``status()`` if given."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f"; {status()}" if status is not None else ""))
        time.sleep(0.1)


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> the node leading it (-1: none right now)."""
    admin = admin_client({"bootstrap.servers": bootstrap,
                          "socket.connection.setup.timeout.ms": 2000})
    metadata = admin.list_topics(topic, timeout=10)
    return {p: meta.leader for p, meta in metadata.topics[topic].partitions.items()}


def in_sync(bootstrap: str, topic: str) -> bool:
    """Whether every replica of every partition of ``topic`` is in sync (a restarted node
    has caught up), so that the next kill leaves min.insync.replicas in sync."""
    admin = admin_client({"bootstrap.servers": bootstrap,
                          "socket.connection.setup.timeout.ms": 2000})
    metadata = admin.list_topics(topic, timeout=10)
    return all(len(meta.isrs) == len(meta.replicas) and meta.leader >= 0
               for meta in metadata.topics[topic].partitions.values())


def log_event_ids(bootstrap: str, topic: str) -> Counter[str]:
    """Every ``event-id`` header in ``topic``, read to its end, with its copies."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        seen: Counter[str] = Counter()
        done = {p for p, high in ends.items() if high == 0}
        deadline = time.monotonic() + 60
        while len(done) < len(ends):
            assert time.monotonic() < deadline, "the topic could not be read to its end"
            for message in consumer.consume(1000, timeout=1):
                if message.error() is not None:
                    continue
                headers = dict(message.headers() or [])
                seen[headers["event-id"].decode()] += 1
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
        return seen
    finally:
        consumer.close()


def lag(bootstrap: str, group: str, topic: str) -> int:
    """Events of ``topic`` the group has not committed past."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions],
                                       timeout=10)
        behind = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            behind += high - (tp.offset if tp.offset >= 0 else low)
        return behind
    finally:
        consumer.close()

"""A small shop of our own for the console's browser tests: real inventory and analytics
services, a loyalty group whose handler fails while a file named ``broken`` sits beside
it, and the console as a process, all on the session's broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import LineItem, OrderCreated
from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.kafka_clients import admin_client
from tidings.replay import Cluster
from tidings.topology import Topology, load_topology, sync

REPO = Path(__file__).resolve().parents[2]

OPERATOR_TOKEN = "operator-token-for-tests"
VIEWER_TOKEN = "viewer-token-for-tests"

LOYALTY = '''
"""Points per order; fails while a file named `broken` sits beside it (bug 12)."""
from pathlib import Path

BROKEN = Path(__file__).with_name("broken")


def setup(connection, database):
    connection.execute(
        "CREATE TABLE IF NOT EXISTS points (event_id TEXT, customer TEXT, points INTEGER)")


def handle(event, ctx):
    if BROKEN.exists():
        raise RuntimeError(f"bug 12: no points rule for {event.customer_id}")
    ctx.db.execute(ctx.sql("INSERT INTO points VALUES (?, ?, ?)"),
                   (ctx.event_id, event.customer_id, event.total_cents // 100))
'''

TEMPLATE = """\
name: {name}
defaults: {{partitions: 3, replication_factor: 1}}
topics:
  {p}orders: {{}}
  {p}inventory: {{}}
events:
  order.created:
    {{topic: {p}orders, schema: schemas/order.created.v2.avsc, key: order_id,
     model: schemas.models:OrderCreated}}
  order.cancelled:
    {{topic: {p}orders, schema: schemas/order.cancelled.v1.avsc, key: order_id,
     model: schemas.models:OrderCancelled}}
  inventory.reserved:
    {{topic: {p}inventory, schema: schemas/inventory.reserved.v1.avsc, key: order_id,
     model: schemas.models:InventoryReserved}}
  inventory.rejected:
    {{topic: {p}inventory, schema: schemas/inventory.rejected.v1.avsc, key: order_id,
     model: schemas.models:InventoryRejected}}
producers:
  order-service: {{publishes: [order.created, order.cancelled]}}
  {p}inventory: {{publishes: [inventory.reserved, inventory.rejected]}}
consumers:
  {p}inventory:
    subscribes: [order.created, order.cancelled]
    handler: consumers.inventory:handle
    retry: [1s]
    dlq: true
  {p}analytics:
    subscribes: [order.created, order.cancelled]
    handler: consumers.analytics:handle_batch
    batch: {{max_events: 100, max_wait: 200ms}}
  {p}loyalty:
    subscribes: [order.created]
    handler: {module}:handle
    retry: [1s]
    dlq: true
"""


@dataclass
class Shop:
    root: Path
    prefix: str
    topology: Topology
    bootstrap: str
    runtimes: list[ConsumerRuntime] = field(default_factory=list)

    @property
    def orders(self) -> str:
        return f"{self.prefix}orders"

    def group(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def database_url(self, name: str) -> str:
        return f"sqlite:///{self.root / (name + '.db')}"

    def runtime(self, name: str) -> ConsumerRuntime:
        setup = resolve_group(self.topology, self.group(name),
                              open_database(self.database_url(name)))
        return ConsumerRuntime(setup, {"bootstrap.servers": self.bootstrap},
                               RuntimeOptions(commit_interval=0.2))

    def query(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        connection = open_database(self.database_url(name)).connect()
        try:
            return list(connection.execute(sql).fetchall())
        except Exception:  # the table is created when the group first starts
            return []
        finally:
            connection.close()

    def dlq_size(self, name: str) -> int:
        topic = f"{self.orders}.{self.group(name)}.dlq"
        marks = Cluster(self.topology).watermarks(topic, [0, 1, 2])
        return sum(high - low for low, high in marks.values())


def make_shop(root: Path, bootstrap: str) -> Shop:
    prefix = "shop-"
    existing = admin_client({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    if f"{prefix}orders" in existing:  # a reused cluster: stay clear of earlier runs
        prefix = f"shop{os.urandom(2).hex()}-"
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"), dirs_exist_ok=True)
    module = f"loyalty_{prefix.strip('-')}"
    (root / f"{module}.py").write_text(LOYALTY)
    path = root / "topology.yaml"
    path.write_text(TEMPLATE.format(p=prefix, module=module, name=f"web{prefix.strip('-')}"))
    topology = load_topology(path)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    return Shop(root, prefix, topology, bootstrap)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ConsoleProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_console(shop: Shop) -> ConsoleProcess:
    """``tidings console`` for the shop's topology, as an operator would start it."""
    port = free_port()
    log = shop.root / "console.log"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": shop.bootstrap,
           "TIDINGS_CONSOLE_TOKEN": OPERATOR_TOKEN, "TIDINGS_CONSOLE_VIEWER_TOKEN": VIEWER_TOKEN}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tidings", "console", "-f", str(shop.topology.path),
             "--port", str(port)], cwd=shop.root, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the console exited: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return ConsoleProcess(f"http://127.0.0.1:{port}", process, log)
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the console did not listen within 60 s: {log.read_text()[-2000:]}")


PRICES = {"MUG-CLASSIC-WHT": 1200, "TEE-LOGO-M": 1900, "HOODIE-GRY-L": 4900,
          "STICKER-PACK-10": 500, "NOTEBOOK-A5-DOT": 1400}


def an_order(index: int) -> OrderCreated:
    """The ``index``-th order of a morning at the shop (the demo's SKUs and prices)."""
    skus = sorted(PRICES)
    chosen = [skus[index % len(skus)], skus[(index * 3 + 1) % len(skus)]]
    items = [LineItem(sku=sku, quantity=1 + index % 2, unit_price_cents=PRICES[sku])
             for sku in dict.fromkeys(chosen)]
    return OrderCreated(order_id=str(uuid.uuid4()), customer_id=f"cust-{index}",
                        customer_email=f"customer{index}@shop.example", currency="EUR",
                        items=items,
                        total_cents=sum(i.quantity * i.unit_price_cents for i in items),
                        created_at=datetime.now(UTC))


class Running:
    """Consumer runtimes in threads, stopped (gracefully) at the end."""

    def __init__(self) -> None:
        self.threads: list[tuple[ConsumerRuntime, threading.Thread]] = []
        self.failures: list[BaseException] = []

    def start(self, runtime: ConsumerRuntime) -> None:
        def run() -> None:
            try:
                runtime.run()
            except BaseException as exc:
                self.failures.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append((runtime, thread))

    def stop(self) -> None:
        for runtime, _ in self.threads:
            runtime.stop()
        for _, thread in self.threads:
            thread.join(timeout=60)


def eventually(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """``condition()`` once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.5)

"""A throwaway topology with the real inventory and analytics services and a group whose
handler an operator can "fix" (a file named ``broken`` beside it makes it fail)."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.replay import Cluster
from tidings.topology import Topology, load_topology, sync

REPO = Path(__file__).resolve().parents[2]

FIXABLE = '''
"""Fails while a file named `broken` sits beside it, and always for `still-broken`."""
from pathlib import Path

BROKEN = Path(__file__).with_name("broken")


def setup(connection, database):
    connection.execute(
        "CREATE TABLE IF NOT EXISTS effects (event_id TEXT, customer TEXT, attempt INTEGER)")


def handle(event, ctx):
    if BROKEN.exists() or event.customer_id == "still-broken":
        raise RuntimeError(f"bug 12 hit by {event.customer_id}")
    ctx.db.execute(ctx.sql("INSERT INTO effects VALUES (?, ?, ?)"),
                   (ctx.event_id, event.customer_id, ctx.attempt))
'''

TEMPLATE = """\
name: it-{p}
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
  {p}fixable:
    subscribes: [order.created]
    handler: {module}:handle
    retry: [1s]
    dlq: true
"""


@dataclass
class Services:
    root: Path
    prefix: str
    topology: Topology

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
        return ConsumerRuntime(setup, {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]},
                               RuntimeOptions(commit_interval=0.2))

    def query(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        connection = open_database(self.database_url(name)).connect()
        try:
            return list(connection.execute(sql).fetchall())
        except Exception:  # the table is created when the group first starts
            return []
        finally:
            connection.close()

    def execute(self, name: str, sql: str) -> None:
        connection = open_database(self.database_url(name)).connect()
        try:
            connection.execute(sql)
            connection.commit()
        finally:
            connection.close()

    def committed(self, name: str, topic: str | None = None) -> dict[int, int | None]:
        cluster = Cluster(self.topology)
        return cluster.committed(self.group(name), topic or self.orders, [0, 1, 2])

    def high(self, topic: str | None = None) -> dict[int, int]:
        marks = Cluster(self.topology).watermarks(topic or self.orders, [0, 1, 2])
        return {p: high for p, (_, high) in marks.items()}


def make_services(root: Path) -> Services:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    if not (root / "schemas").exists():
        shutil.copytree(REPO / "schemas", root / "schemas",
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    module = f"fixable_{prefix.strip('-')}"
    (root / f"{module}.py").write_text(FIXABLE)
    path = root / "topology.yaml"
    path.write_text(TEMPLATE.format(p=prefix, module=module))
    topology = load_topology(path)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    return Services(root, prefix, topology)



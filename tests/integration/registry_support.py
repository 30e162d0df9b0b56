"""A shop topology in registry mode, and a consumer group that records every event."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.topology import Topology, load_topology, sync

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 11, 23, 1, 2, 3, 456000, tzinfo=UTC)

HANDLER = '''
"""Records every event it is given: type, id, schema header and the record as JSON."""
import json


def setup(connection, database):
    connection.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT, event_type TEXT, "
                       "schema TEXT, body TEXT)")


def handle(event, ctx):
    body = event if isinstance(event, dict) else event.model_dump(mode="json")
    ctx.db.execute(ctx.sql("INSERT INTO seen VALUES (?, ?, ?, ?)"), (
        ctx.event_id, ctx.event_type, ctx.headers.get("schema", ""),
        json.dumps(body, sort_keys=True, default=str)))
'''

TEMPLATE = """\
name: {name}
cluster:
  schema_registry_url: {url}
  auto_register_schemas: {auto_register}
defaults: {{partitions: 3, replication_factor: 1}}
topics:
  {p}orders: {{}}
  {p}inventory: {{}}
events:
  order.created:
    topic: {p}orders
    schema: {schemas}/order.created.{created_version}.avsc
    key: order_id
    model: schemas.models:OrderCreated
  order.cancelled:
    topic: {p}orders
    schema: {schemas}/order.cancelled.v1.avsc
    key: order_id
    model: schemas.models:OrderCancelled
  inventory.reserved:
    topic: {p}inventory
    schema: {schemas}/inventory.reserved.v1.avsc
    key: order_id
    model: schemas.models:InventoryReserved
  inventory.rejected:
    topic: {p}inventory
    schema: {schemas}/inventory.rejected.v1.avsc
    key: order_id
    model: schemas.models:InventoryRejected
producers:
  shop: {{publishes: [order.created, order.cancelled, inventory.reserved, inventory.rejected]}}
consumers:
  {p}everything:
    subscribes: [order.created, order.cancelled, inventory.reserved, inventory.rejected]
    handler: {module}:handle
{consumer_extra}"""


@dataclass
class RegistryShop:
    root: Path
    prefix: str
    topology: Topology
    path: Path

    @property
    def orders_topic(self) -> str:
        return f"{self.prefix}orders"

    @property
    def inventory_topic(self) -> str:
        return f"{self.prefix}inventory"

    @property
    def group(self) -> str:
        return f"{self.prefix}everything"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / (self.group + '.db')}"

    def runtime(self, **options: Any) -> ConsumerRuntime:
        setup = resolve_group(self.topology, self.group, open_database(self.database_url))
        return ConsumerRuntime(setup, {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]},
                               RuntimeOptions(**options))

    def seen(self) -> list[tuple[str, str, str, str]]:
        connection = open_database(self.database_url).connect()
        try:
            return list(connection.execute(
                "SELECT event_id, event_type, schema, body FROM seen ORDER BY rowid").fetchall())
        except Exception:  # the table does not exist before the runtime has set it up
            return []
        finally:
            connection.close()


def make_registry_shop(
    root: Path, url: str, *, created_version: str = "v2", auto_register: bool = False,
    prefix: str | None = None, schemas: str = "schemas", apply: bool = True,
    consumer_extra: str = "",
) -> RegistryShop:
    """Write a registry-mode topology under ``root`` and create its topics.

    ``prefix`` makes topics (and so registry subjects) unique to one test; pass the
    same one to model a later version of the same topology.
    """
    prefix = prefix or f"r{uuid.uuid4().hex[:8]}-"
    if not (root / "schemas").exists():
        shutil.copytree(REPO / "schemas", root / "schemas",
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    module = f"seen_{prefix.strip('-')}"
    (root / f"{module}.py").write_text(HANDLER)
    path = root / f"topology-{prefix}{created_version}.yaml"
    path.write_text(TEMPLATE.format(
        name=f"it-{prefix}", p=prefix, url=url, auto_register=str(auto_register).lower(),
        created_version=created_version, schemas=schemas, module=module,
        consumer_extra=consumer_extra))
    # Like the shop's own tests: a v1 topology publishes with the (v2) model.
    topology = load_topology(path, check_imports=False)
    if apply:
        view = sync.connect(topology)
        sync.apply(view, sync.plan(view))
    return RegistryShop(root, prefix, topology, path)

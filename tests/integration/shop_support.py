"""A throwaway copy of the shop topology with topic names unique to one test."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from schemas import LineItem, OrderCreated
from tidings.topology import Topology, load_topology, sync

REPO = Path(__file__).resolve().parents[2]

TEMPLATE = """\
name: {name}
defaults:
  partitions: 3
  replication_factor: 1
topics:
  {p}orders: {{}}
  {p}inventory: {{}}
events:
  order.created:
    topic: {p}orders
    schema: schemas/order.created.{created_version}.avsc
    key: order_id
    model: {created_model}
  order.cancelled:
    topic: {p}orders
    schema: schemas/order.cancelled.v1.avsc
    key: order_id
    model: schemas.models:OrderCancelled
  inventory.reserved:
    topic: {p}inventory
    schema: schemas/inventory.reserved.v1.avsc
    key: order_id
    model: schemas.models:InventoryReserved
  inventory.rejected:
    topic: {p}inventory
    schema: schemas/inventory.rejected.v1.avsc
    key: order_id
    model: schemas.models:InventoryRejected
producers:
  order-service:
    publishes: [order.created, order.cancelled]
  inventory:
    publishes: [inventory.reserved, inventory.rejected]
"""


@dataclass
class Shop:
    root: Path
    prefix: str
    topology: Topology

    @property
    def orders_topic(self) -> str:
        return f"{self.prefix}orders"

    @property
    def inventory_topic(self) -> str:
        return f"{self.prefix}inventory"


def make_shop(root: Path, *, created_version: str = "v2", apply: bool = True,
              prefix: str | None = None) -> Shop:
    """Write the topology under ``root`` (schemas copied) and create its topics."""
    prefix = prefix or f"t{uuid.uuid4().hex[:8]}-"
    if not (root / "schemas").exists():
        shutil.copytree(REPO / "schemas", root / "schemas",
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = root / f"topology-{created_version}.yaml"
    path.write_text(TEMPLATE.format(
        name=f"it-{prefix}", p=prefix, created_version=created_version,
        created_model="schemas.models:OrderCreated",
    ))
    topology = load_topology(path, check_imports=False)
    if apply:
        view = sync.connect(topology)
        sync.apply(view, sync.plan(view))
    return Shop(root, prefix, topology)


def an_order(**overrides: Any) -> OrderCreated:
    fields: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "customer_id": "c-42",
        "customer_email": "ada@example.com",
        "currency": "EUR",
        "items": [LineItem(sku="SKU-1", quantity=2, unit_price_cents=1250)],
        "total_cents": 2500,
        "created_at": datetime(2026, 11, 23, 1, 2, 3, 456000, tzinfo=UTC),
    }
    fields.update(overrides)
    return OrderCreated(**fields)


def read_all(bootstrap: str, topic: str, *, expect: int | None = None,
             timeout: float = 30.0) -> list[Message]:
    """Every message of ``topic`` from the beginning (stops at ``expect`` or the end)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1]
                for p in partitions}
        consumer.assign(partitions)
        messages: list[Message] = []
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if expect is not None and len(messages) >= expect:
                break
            if expect is None and all(
                    _position(consumer, p) >= ends[p.partition] for p in partitions):
                break
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
        return messages
    finally:
        consumer.close()


def _position(consumer: Consumer, partition: TopicPartition) -> int:
    (position,) = consumer.position([TopicPartition(partition.topic, partition.partition)])
    return int(position.offset) if position.offset >= 0 else 0


def headers_of(message: Message) -> dict[str, str]:
    return {k: v.decode() for k, v in (message.headers() or [])}


def iter_event_ids(messages: list[Message]) -> Iterator[str]:
    for message in messages:
        yield headers_of(message)["event-id"]


def eventually(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """``condition()`` once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.1)

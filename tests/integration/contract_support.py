"""The scenarios the TestBroker contract runs, the same on both sides of it."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import LineItem, OrderCreated
from tidings.codec import SchemaCatalogue, codec_for
from tidings.testing.outcomes import GroupRun, Sent
from tidings.topology import Topology, load_topology

REPO = Path(__file__).resolve().parents[2]

HANDLER = '''
"""Contract handler: event.customer_id says how to behave."""
from schemas import InventoryReserved, ReservedItem
from tidings.consumer import NonRetryableError


def setup(connection, database):
    connection.execute("CREATE TABLE IF NOT EXISTS effects "
                       "(event_id TEXT, order_id TEXT, attempt INTEGER)")


def _apply(event, meta, ctx):
    behaviour = event.customer_id
    if behaviour == "fail-twice" and meta.attempt <= 2:
        raise RuntimeError(f"transient failure on attempt {meta.attempt}")
    if behaviour == "fail-always":
        raise RuntimeError("always broken")
    if behaviour == "non-retryable":
        raise NonRetryableError("this order can never be handled")
    ctx.db.execute(ctx.sql("INSERT INTO effects VALUES (?, ?, ?)"),
                   (meta.event_id, event.order_id, meta.attempt))
    if behaviour == "follow-up":
        ctx.publish(InventoryReserved(
            order_id=event.order_id,
            items=[ReservedItem(sku=i.sku, quantity=i.quantity) for i in event.items],
            reserved_at=event.created_at))


def handle(event, ctx):
    _apply(event, ctx.meta, ctx)


def handle_batch(events, ctx):
    for item in ctx.items:
        _apply(item.event, item.meta, ctx)
'''

TEMPLATE = """\
name: contract-{p}
defaults: {{partitions: 3, replication_factor: 1}}
topics:
  {p}orders: {{}}
  {p}inventory: {{}}
events:
  order.created:
    topic: {p}orders
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas.models:OrderCreated
  inventory.reserved:
    topic: {p}inventory
    schema: schemas/inventory.reserved.v1.avsc
    key: order_id
    model: schemas.models:InventoryReserved
producers:
  order-service: {{publishes: [order.created]}}
  {p}worker: {{publishes: [inventory.reserved]}}
consumers:
  {p}worker:
    subscribes: [order.created]
    handler: {module}:{function}
    retry: [1s, 2s]
{extra}"""


@dataclass
class Contract:
    topology: Topology
    group: str
    prefix: str

    @property
    def orders(self) -> str:
        return f"{self.prefix}orders"


def make_contract(root: Path, *, batch: bool) -> Contract:
    prefix = f"c{uuid.uuid4().hex[:8]}-"
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    module = f"contract_{prefix.strip('-')}"
    (root / f"{module}.py").write_text(HANDLER)
    extra = "    batch: {max_events: 50, max_wait: 200ms}\n" if batch else ""
    path = root / "topology.yaml"
    path.write_text(TEMPLATE.format(p=prefix, module=module,
                                    function="handle_batch" if batch else "handle",
                                    extra=extra))
    return Contract(load_topology(path), f"{prefix}worker", prefix)


def order(order_id: str, behaviour: str) -> OrderCreated:
    return OrderCreated(
        order_id=order_id, customer_id=behaviour, customer_email="ada@example.com",
        currency="EUR", items=[LineItem(sku="SKU-1", quantity=2, unit_price_cents=1250)],
        total_cents=2500, created_at=datetime(2026, 11, 23, 1, 2, 3, 456000, tzinfo=UTC))


#: scenario -> the behaviour its order asks of the handler
SCENARIOS = {
    "success": "ok",
    "duplicate": "ok",
    "retry-then-success": "fail-twice",
    "retry-exhausted": "fail-always",
    "non-retryable": "non-retryable",
    "follow-up": "follow-up",
}


@dataclass(frozen=True)
class Publication:
    """One message a scenario publishes: a typed event, or raw bytes."""

    event_id: str
    event: OrderCreated | None = None
    raw: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


def publications(contract: Contract) -> list[Publication]:
    """Every scenario's messages, with fixed event ids so both sides can be compared."""
    items: list[Publication] = []
    for name, behaviour in SCENARIOS.items():
        event = order(f"order-{name}", behaviour)
        items.append(Publication(f"id-{name}", event))
        if name == "duplicate":
            items.append(Publication(f"id-{name}", event))  # the redelivery
    items.append(Publication("id-poison", raw=b"\x00not an event",
                             headers=(("event-id", "id-poison"),
                                      ("event-type", "order.created"))))
    # Valid Avro, but the model rejects it: the total is not what the items add up to.
    declared = contract.topology.declared_events()
    codec = codec_for(declared, None, SchemaCatalogue.from_events(declared))
    record = order("order-invalid", "ok").to_avro() | {"total_cents": 1}
    items.append(Publication("id-invalid", raw=codec.encode("order.created", record),
                             headers=(("event-id", "id-invalid"),
                                      ("event-type", "order.created"))))
    return items


#: Headers whose values depend on the clock or the delivery's coordinates.
_VOLATILE = {"failed-at", "not-before", "occurred-at", "traceparent", "original-offset"}


def _letter(sent: Sent) -> tuple[Any, ...]:
    headers = tuple(sorted((k, v) for k, v in sent.headers.items() if k not in _VOLATILE))
    return sent.topic, sent.partition, sent.key, sent.value, headers


def _follow_up(sent: Sent) -> tuple[Any, ...]:
    event = sent.event.model_dump() if sent.event is not None else None
    return sent.topic, sent.key, sent.event_type, repr(event)


def observed(run: GroupRun, effects: list[tuple[Any, ...]]) -> dict[str, Any]:
    """What a run did, without what legitimately differs between two runs (times,
    partitions and offsets, the order across partitions)."""
    return {
        # The partition too: TestBroker places keys with the producers' partitioner.
        "outcomes": sorted((o.event_id, o.attempt, o.topic, o.partition, o.outcome.value,
                            o.error_class or "", o.error_message or "") for o in run.outcomes),
        "retries": sorted(_letter(s) for s in run.retries),
        "dead_letters": sorted(_letter(s) for s in run.dead_letters),
        "follow_ups": sorted(_follow_up(s) for s in run.follow_ups),
        "effects": sorted(effects),
    }

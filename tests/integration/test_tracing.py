"""OpenTelemetry traces across the shop, recorded with the SDK's in-memory exporter.

The order service (over HTTP, its outbox relayed to Kafka), inventory (whose follow-up
events go through its own outbox) and order-status run in this process on the session
broker, with a third group, audit, that fails on purpose: one order must make one trace
order-service -> inventory -> order-status with the right parents and attributes, and a
retry, a dead letter and a replay each start a trace of their own, linked to the first.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from runtime_support import running
from shop_support import an_order, eventually, headers_of, read_all

from producers.order_service.app import create_app
from producers.order_service.settings import OrderServiceSettings
from tidings import tracing
from tidings.cli import main
from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.producer.publisher import Publisher
from tidings.topology import Topology, load_topology, sync

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

SHOP = """\
name: it-{p}
defaults: {{partitions: 3, replication_factor: 1}}
topics:
  {p}orders: {{}}
  {p}inventory: {{}}
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
    retry: [1s]
    dlq: true
  {p}order-status:
    subscribes: [inventory.reserved, inventory.rejected]
    handler: producers.order_service.status:handle
    retry: [1s]
  {p}audit:
    subscribes: [order.created]
    handler: audit_{p_}:handle
    retry: [1s]
    dlq: true
"""

AUDIT = '''
from tidings.consumer import NonRetryableError


def handle(event, ctx):
    if event.customer_id == "flaky" and ctx.attempt == 1:
        raise RuntimeError("flaky on its first attempt")
    if event.customer_id == "poison":
        raise NonRetryableError("this order can never be audited")
'''

ORDER = {"customer_email": "grace@example.com", "currency": "EUR",
         "items": [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 1999}]}


@dataclass
class TracedShop:
    prefix: str
    topology: Topology
    client: TestClient
    exporter: InMemorySpanExporter
    bootstrap: str

    def group(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def order(self, customer: str) -> str:
        response = self.client.post("/orders", json={**ORDER, "customer_id": customer})
        assert response.status_code == 202, response.text
        return str(response.json()["order_id"])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str, **attributes: Any) -> ReadableSpan:
        """The one finished span named ``name`` (prefix left out) with ``attributes``."""
        return eventually(lambda: _one([s for s in self.spans()
                                        if s.name == f"{self.prefix}{name}"
                                        and _has(s, attributes)]),
                          30, f"a span {name!r} with {attributes}")

    def message(self, topic: str, key: str) -> Any:
        found = [m for m in read_all(self.bootstrap, topic) if m.key() == key.encode()]
        assert len(found) == 1, (topic, key, len(found))
        return found[0]


def _one(spans: list[ReadableSpan]) -> ReadableSpan | None:
    assert len(spans) <= 1, [s.name for s in spans]
    return spans[0] if spans else None


def _has(span: ReadableSpan, attributes: dict[str, Any]) -> bool:
    return all((span.attributes or {}).get(k) == v for k, v in attributes.items())


def traceparent(span: ReadableSpan) -> str:
    assert span.context is not None
    return tracing.format_traceparent(span.context)


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.context is not None and parent.context is not None
    return (child.parent is not None and child.parent.span_id == parent.context.span_id
            and child.context.trace_id == parent.context.trace_id)


def linked_to(span: ReadableSpan, target: ReadableSpan) -> bool:
    assert target.context is not None
    return [(link.context.trace_id, link.context.span_id) for link in span.links] == \
        [(target.context.trace_id, target.context.span_id)]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
         ) -> Iterator[TracedShop]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    root = tmp_path_factory.mktemp("traced")
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (root / f"audit_{prefix.strip('-')}.py").write_text(AUDIT)
    path = root / "shop.yaml"
    path.write_text(SHOP.format(p=prefix, p_=prefix.strip("-")))
    mp = pytest.MonkeyPatch()
    mp.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    mp.setenv("INVENTORY_INITIAL_STOCK", "SKU-1=1000")
    mp.syspath_prepend(str(root))
    tracing.use(provider)  # before anything is built: preparers and workers read it once
    try:
        topology = load_topology(path)
        view = sync.connect(topology)
        sync.apply(view, sync.plan(view))
        orders_db = f"sqlite:///{root / 'orders.db'}"

        def runtime(group: str, url: str) -> ConsumerRuntime:
            setup = resolve_group(topology, f"{prefix}{group}", open_database(url))
            return ConsumerRuntime(setup, {"bootstrap.servers": kafka_bootstrap},
                                   RuntimeOptions(commit_interval=0.2))

        settings = OrderServiceSettings(database_url=orders_db, topology=path)
        with TestClient(create_app(settings, topology)) as client, \
                running(runtime("inventory", f"sqlite:///{root / 'inventory.db'}")), \
                running(runtime("order-status", orders_db)), \
                running(runtime("audit", f"sqlite:///{root / 'audit.db'}")):
            yield TracedShop(prefix, topology, client, exporter, kafka_bootstrap)
    finally:
        tracing.use(None)
        mp.undo()
        provider.shutdown()


def test_one_order_is_one_trace_from_the_order_service_to_order_status(
        shop: TracedShop) -> None:
    order_id = shop.order("c-1")
    eventually(lambda: shop.client.get(f"/orders/{order_id}").json()["status"] == "reserved",
               60, "order-status to move the order to reserved")
    created = shop.message(shop.topic("orders"), order_id)
    created_id = headers_of(created)["event-id"]
    reserved = shop.message(shop.topic("inventory"), order_id)
    reserved_id = headers_of(reserved)["event-id"]

    published = shop.span("orders publish", **{"messaging.message.id": created_id})
    inventory = shop.span("inventory process", **{"messaging.message.id": created_id})
    followed = shop.span("inventory publish", **{"messaging.message.id": reserved_id})
    status = shop.span("order-status process", **{"messaging.message.id": reserved_id})
    audited = shop.span("audit process", **{"messaging.message.id": created_id})

    # One trace: the order service's publish, inventory's handler, its follow-up event
    # (staged in its outbox inside the handler's transaction), order-status's handler.
    assert published.parent is None and published.kind is SpanKind.PRODUCER
    assert is_child(inventory, published) and inventory.kind is SpanKind.CONSUMER
    assert is_child(followed, inventory) and followed.kind is SpanKind.PRODUCER
    assert is_child(status, followed) and status.kind is SpanKind.CONSUMER
    assert is_child(audited, published), "every group's handler is a child of the publish"
    assert published.context is not None
    trace_id = published.context.trace_id
    assert {s.name.removeprefix(shop.prefix) for s in shop.spans()
            if s.context is not None and s.context.trace_id == trace_id} == {
        "orders publish", "inventory process", "inventory publish", "order-status process",
        "audit process"}
    # What travelled in Kafka is the publish spans' context.
    assert headers_of(created)["traceparent"] == traceparent(published)
    assert headers_of(reserved)["traceparent"] == traceparent(followed)

    assert published.attributes == {
        "messaging.system": "kafka", "messaging.operation.type": "send",
        "messaging.destination.name": shop.topic("orders"),
        "tidings.event_type": "order.created", "tidings.producer": "order-service",
        "messaging.message.id": created_id}
    assert inventory.attributes == {
        "messaging.system": "kafka", "messaging.operation.type": "process",
        "messaging.consumer.group.name": shop.group("inventory"),
        "messaging.destination.name": shop.topic("orders"),
        "messaging.destination.partition.id": str(created.partition()),
        "messaging.kafka.offset": created.offset(),
        "messaging.message.id": created_id, "tidings.event_type": "order.created",
        "tidings.attempt": 1}
    assert followed.attributes is not None and status.attributes is not None
    assert followed.attributes["tidings.event_type"] == "inventory.reserved"
    assert followed.attributes["tidings.producer"] == shop.group("inventory")
    assert (status.attributes["messaging.consumer.group.name"],
            status.attributes["messaging.destination.name"],
            status.attributes["messaging.destination.partition.id"],
            status.attributes["messaging.kafka.offset"],
            status.attributes["tidings.event_type"], status.attributes["tidings.attempt"]) == (
        shop.group("order-status"), shop.topic("inventory"), str(reserved.partition()),
        reserved.offset(), "inventory.reserved", 1)
    assert all(s.status.status_code is StatusCode.UNSET
               for s in (published, inventory, followed, status, audited))


def test_a_publisher_continues_the_callers_span_and_ends_its_own_at_the_ack(
        shop: TracedShop) -> None:
    tracer = tracing.tracer()
    with Publisher(shop.topology, "order-service") as publisher:
        with tracer.start_as_current_span("checkout") as checkout:
            delivery = publisher.publish(an_order(customer_id="c-2"))
        given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        passed = publisher.publish(an_order(customer_id="c-3"), traceparent=given)
    (own,) = [s for s in shop.spans() if (s.attributes or {}).get("messaging.message.id")
              == delivery.event_id and s.kind is SpanKind.PRODUCER]
    assert own.parent is not None and own.parent.span_id == checkout.get_span_context().span_id
    assert own.attributes is not None
    assert own.attributes["messaging.destination.partition.id"] == str(delivery.partition)
    assert own.attributes["messaging.kafka.offset"] == delivery.offset
    (continued,) = [s for s in shop.spans() if (s.attributes or {}).get(
        "messaging.message.id") == passed.event_id and s.kind is SpanKind.PRODUCER]
    assert continued.parent is not None and continued.context is not None
    assert f"{continued.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{continued.parent.span_id:016x}" == "b7ad6b7169203331"


def test_a_retry_and_a_dead_letter_start_new_traces_linked_to_the_original(
        shop: TracedShop) -> None:
    flaky_id, poison_id = shop.order("flaky"), shop.order("poison")
    orders, audit = shop.topic("orders"), shop.group("audit")
    flaky = headers_of(shop.message(orders, flaky_id))["event-id"]
    published = shop.span("orders publish", **{"messaging.message.id": flaky})

    first = shop.span("audit process", **{"messaging.message.id": flaky,
                                          "tidings.attempt": 1})
    assert is_child(first, published)
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    retry_topic = f"{orders}.{audit}.retry.1s"
    copy = shop.span(f"orders.{audit}.retry.1s publish", **{"messaging.message.id": flaky})
    assert copy.parent is None and linked_to(copy, published), "a new trace, linked"
    second = shop.span("audit process", **{"messaging.message.id": flaky,
                                           "tidings.attempt": 2})
    assert is_child(second, copy) and linked_to(second, published)
    assert second.attributes is not None
    assert second.attributes["messaging.destination.name"] == retry_topic
    assert second.status.status_code is StatusCode.UNSET

    dead = shop.message(f"{orders}.{audit}.dlq", poison_id)
    poison = headers_of(dead)["event-id"]
    original = shop.span("orders publish", **{"messaging.message.id": poison})
    dead_copy = shop.span(f"orders.{audit}.dlq publish", **{"messaging.message.id": poison})
    assert headers_of(dead)["original-traceparent"] == traceparent(original)
    assert headers_of(dead)["traceparent"] == traceparent(dead_copy)
    assert dead_copy.parent is None and linked_to(dead_copy, original)


def test_a_replayed_event_is_a_new_trace_linked_to_the_original(
        shop: TracedShop, capsys: pytest.CaptureFixture[str]) -> None:
    order_id = shop.order("c-4")
    orders, audit = shop.topic("orders"), shop.group("audit")
    event_id = headers_of(shop.message(orders, order_id))["event-id"]
    original = shop.span("orders publish", **{"messaging.message.id": event_id})
    shop.span("audit process", **{"messaging.message.id": event_id, "tidings.attempt": 1})
    assert main(["replay", "-f", str(shop.topology.path), "--group", audit, "--topic", orders,
                 "--from", "-1h", "--reprocess", "--execute", "--no-progress"]) == 0
    assert "Copied" in capsys.readouterr().out
    replay_topic = f"{orders}.{audit}.replay"
    copy = shop.span(f"orders.{audit}.replay publish", **{"messaging.message.id": event_id})
    again = shop.span("audit process", **{"messaging.message.id": event_id,
                                          "messaging.destination.name": replay_topic})
    assert copy.parent is None and linked_to(copy, original)
    assert is_child(again, copy) and linked_to(again, original)
    assert again.attributes is not None and again.attributes["tidings.reprocess_id"]
    copied = shop.message(replay_topic, order_id)
    assert headers_of(copied)["original-traceparent"] == traceparent(original)
    assert headers_of(copied)["traceparent"] == traceparent(copy)

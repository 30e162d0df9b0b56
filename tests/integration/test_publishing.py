"""Publishing typed events through a real broker, and reading them back."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import avro.io
import avro.schema
import pytest
from shop_support import an_order, headers_of, make_shop, read_all

from schemas import (
    InventoryRejected,
    InventoryReserved,
    OrderCancelled,
    ReservedItem,
)
from tidings.codec import SingleObjectCodec
from tidings.producer.prepare import PublishRefused
from tidings.producer.publisher import Publisher, PublishFailed
from tidings.producer.reliable import DeliveryFailed

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MOMENT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _bootstrap(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)


def test_every_event_type_round_trips_through_the_broker(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    shop = make_shop(tmp_path)
    order = an_order(coupon_code="WELCOME10")
    cancelled = OrderCancelled(order_id=order.order_id, reason="changed mind",
                               cancelled_at=MOMENT)
    reserved = InventoryReserved(order_id=order.order_id,
                                 items=[ReservedItem(sku="SKU-1", quantity=2)],
                                 reserved_at=MOMENT)
    rejected = InventoryRejected(order_id=order.order_id, sku="SKU-9", requested=3,
                                 available=1, rejected_at=MOMENT)
    with Publisher(shop.topology, "order-service") as orders:
        first = orders.publish(order)
        orders.publish_many([cancelled])
    with Publisher(shop.topology, "inventory") as inventory:
        inventory.publish_many([reserved, rejected])

    assert first.topic == shop.orders_topic and first.offset >= 0
    codec = SingleObjectCodec(orders.preparer.catalogue)
    read = {}
    for topic, count in ((shop.orders_topic, 2), (shop.inventory_topic, 2)):
        for message in read_all(kafka_bootstrap, topic, expect=count):
            decoded = codec.decode(message.value())
            read[decoded.event] = decoded.record
            assert message.key() == order.order_id.encode(), "keyed by the declared key field"
    assert type(order).from_avro(read["order.created"]) == order
    assert OrderCancelled.from_avro(read["order.cancelled"]) == cancelled
    assert InventoryReserved.from_avro(read["inventory.reserved"]) == reserved
    assert InventoryRejected.from_avro(read["inventory.rejected"]) == rejected


def test_every_event_carries_the_standard_headers(tmp_path: Path, kafka_bootstrap: str) -> None:
    shop = make_shop(tmp_path)
    with Publisher(shop.topology, "order-service") as publisher:
        delivery = publisher.publish(an_order(), event_id="order-123-created")
        writer = publisher.preparer.catalogue.writer("order.created")
    (message,) = read_all(kafka_bootstrap, shop.orders_topic, expect=1)
    headers = headers_of(message)
    assert delivery.event_id == "order-123-created"
    assert headers["event-id"] == "order-123-created"
    assert headers["event-type"] == "order.created"
    assert headers["schema"] == writer.fingerprint.hex()
    assert headers["producer"] == "order-service"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", headers["traceparent"])
    occurred = datetime.fromisoformat(headers["occurred-at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - occurred).total_seconds()) < 60


def test_v1_written_reads_as_v2_and_v2_written_reads_as_v1(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    new = make_shop(tmp_path, created_version="v2")
    old = make_shop(tmp_path, created_version="v1", prefix=new.prefix)
    with Publisher(old.topology, "order-service") as v1_service:
        v1_service.publish(an_order(customer_id="written-by-v1"))
    with Publisher(new.topology, "order-service") as v2_service:
        v2_service.publish(an_order(customer_id="written-by-v2", coupon_code="SPRING"))
        catalogue = v2_service.preparer.catalogue
    codec = SingleObjectCodec(catalogue)
    v1, v2 = catalogue.version("order.created", 1), catalogue.version("order.created", 2)

    records = {}
    for message in read_all(kafka_bootstrap, new.orders_topic, expect=2):
        written = codec.decode(message.value())
        records[written.record["customer_id"]] = (
            written.writer_version,
            codec.decode(message.value(), reader=v2).record,
            codec.decode(message.value(), reader=v1).record,
        )
    writer, as_v2, as_v1 = records["written-by-v1"]
    assert writer == 1
    assert as_v2["coupon_code"] is None, "v2 reader fills the new field's default"
    writer, as_v2, as_v1 = records["written-by-v2"]
    assert writer == 2
    assert as_v2["coupon_code"] == "SPRING"
    assert "coupon_code" not in as_v1, "v1 reader ignores the field it does not know"


def test_an_independent_avro_implementation_reads_the_payload(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    shop = make_shop(tmp_path)
    order = an_order()
    with Publisher(shop.topology, "order-service") as publisher:
        publisher.publish(order)
    (message,) = read_all(kafka_bootstrap, shop.orders_topic, expect=1)
    payload = message.value()
    assert payload[:2] == b"\xc3\x01", "Avro single-object encoding marker"

    schema = avro.schema.parse((REPO / "schemas" / "order.created.v2.avsc").read_text())
    reader = avro.io.DatumReader(schema)
    record = reader.read(avro.io.BinaryDecoder(io.BytesIO(payload[10:])))
    assert record["order_id"] == order.order_id
    assert record["items"] == [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 1250}]
    assert record["created_at"] == order.created_at


def test_publishing_an_undeclared_event_is_refused(tmp_path: Path) -> None:
    shop = make_shop(tmp_path, apply=False)
    reserved = InventoryReserved(order_id="o-1", items=[ReservedItem(sku="S", quantity=1)],
                                 reserved_at=MOMENT)
    with Publisher(shop.topology, "order-service") as publisher, \
            pytest.raises(PublishRefused, match=r"not declared to publish 'inventory\.reserved'"):
        publisher.publish(reserved)
    with pytest.raises(PublishRefused, match="'billing' is not a producer"):
        Publisher(shop.topology, "billing")


def test_publish_async_waits_for_the_broker(tmp_path: Path, kafka_bootstrap: str) -> None:
    shop = make_shop(tmp_path)

    async def publish_three(publisher: Publisher) -> list[int]:
        deliveries = await asyncio.gather(*(publisher.publish_async(an_order())
                                            for _ in range(3)))
        return [d.offset for d in deliveries]

    with Publisher(shop.topology, "order-service") as publisher:
        offsets = asyncio.run(publish_three(publisher))
    assert all(offset >= 0 for offset in offsets)
    assert len(read_all(kafka_bootstrap, shop.orders_topic, expect=3)) == 3


def test_publish_raises_within_its_timeout_when_the_broker_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidings.kafka_local.ports import find_free_base_port

    shop = make_shop(tmp_path, apply=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{find_free_base_port(1)}")
    publisher = Publisher(shop.topology, "order-service", delivery_timeout=3)
    began = time.monotonic()
    with pytest.raises(DeliveryFailed, match=r"was not delivered to .*orders.*broker"):
        publisher.publish(an_order())
    assert time.monotonic() - began < 3 + 5, "bounded by the delivery timeout"
    with pytest.raises(PublishFailed, match="2 of 2 events were not delivered") as failed:
        publisher.publish_many([an_order(), an_order()])
    assert failed.value.deliveries == [None, None]
    publisher.close()  # nothing is left queued: every failure was reported to the caller


def test_cli_publish_prints_where_the_event_went(
    tmp_path: Path, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tidings.cli import main

    shop = make_shop(tmp_path)
    data = json.loads(an_order().model_dump_json())
    code = main(["publish", "order.created", "--data", json.dumps(data),
                 "-f", str(shop.topology.path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.match(rf"{shop.orders_topic}/\d+/\d+ event-id [0-9a-f-]{{36}}", out)

    data["items"][0]["quantity"] = 0
    code = main(["publish", "order.created", "--data", json.dumps(data),
                 "-f", str(shop.topology.path)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "items.0.quantity" in err and "Traceback" not in err

    code = main(["publish", "order.shipped", "--data", "{}", "-f", str(shop.topology.path)])
    _, err = capsys.readouterr()
    assert code == 1 and "unknown event 'order.shipped'" in err

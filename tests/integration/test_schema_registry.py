"""Registry mode against a real schema registry (Apicurio, Confluent-compatible API).

Events go Publisher -> Kafka -> the consumer runtime in the Confluent wire format;
confluent-kafka's own AvroSerializer and AvroDeserializer interoperate with them; the
registry's compatibility verdicts agree with `tidings schemas check`.
"""

from __future__ import annotations

import copy
import json
import shutil
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from registry_support import REPO, WHEN, RegistryShop, make_registry_shop
from runtime_support import running
from shop_support import an_order, eventually, headers_of, read_all

from schemas import (
    InventoryRejected,
    InventoryReserved,
    OrderCancelled,
    OrderCreated,
    ReservedItem,
)
from tidings.cli import main
from tidings.codec import RegistryUnavailable, SchemaCatalogue, SchemaRejected, compat
from tidings.codec.catalogue import DeclaredEvent
from tidings.codec.events import Event
from tidings.codec.registry import make_client, record_subject
from tidings.codec.subjects import check_with_registry, register_schemas
from tidings.producer.publisher import Publisher

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _bootstrap(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.delenv("TIDINGS_SCHEMA_REGISTRY_URL", raising=False)


def one_of_each() -> list[Event]:
    order = an_order(coupon_code="TEN", total_cents=2400)
    return [
        order,
        OrderCancelled(order_id=order.order_id, reason="changed my mind", cancelled_at=WHEN),
        InventoryReserved(order_id=order.order_id, items=[ReservedItem(sku="SKU-1", quantity=2)],
                          reserved_at=WHEN),
        InventoryRejected(order_id="o-404", sku="SKU-9", requested=3, available=1,
                          rejected_at=WHEN),
    ]


def register(shop: RegistryShop, capsys: pytest.CaptureFixture[str]) -> str:
    # The v1 topologies publish with the v2 model, as the shop's own tests do.
    code = main(["schemas", "register", "--no-imports", "-f", str(shop.path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def registry_id(url: str, shop: RegistryShop, event: str, version: int) -> int:
    catalogue = SchemaCatalogue.from_events(shop.topology.declared_events())
    schema = catalogue.version(event, version)
    subject = record_subject(shop.topology.events[event].topic, catalogue.writer(event))
    found = make_client(url).lookup_schema(subject, Schema(json.dumps(schema.raw), "AVRO"))
    return int(found.schema_id)


def test_every_event_type_round_trips_through_the_registry(
    tmp_path: Path, schema_registry: str, kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shop = make_registry_shop(tmp_path, schema_registry)
    out = register(shop, capsys)
    assert f"order.created -> {shop.prefix}orders-tidings.events.order.OrderCreated " \
           "(BACKWARD_TRANSITIVE): v1 id" in out
    assert "5 schema versions registered, 0 already there" in out

    events = one_of_each()
    with Publisher(shop.topology, "shop") as publisher:
        deliveries = publisher.publish_many(events)
    with running(shop.runtime()):
        seen = eventually(lambda: len(shop.seen()) >= 4 and shop.seen(), 120, "all four events")
    assert len(seen) == 4
    rows = {row[0]: row for row in seen}
    for event, delivery in zip(events, deliveries, strict=True):
        _, event_type, schema_header, body = rows[delivery.event_id]
        assert event_type == event.event_type
        assert json.loads(body) == json.loads(event.model_dump_json())
        # The header carries the writer's registry id, as the payload does.
        version = type(event).schema_version
        assert schema_header == str(registry_id(schema_registry, shop, event.event_type, version))

    payloads = read_all(kafka_bootstrap, shop.orders_topic, expect=2) + \
        read_all(kafka_bootstrap, shop.inventory_topic, expect=2)
    assert len(payloads) == 4
    for message in payloads:
        magic, schema_id = struct.unpack(">bI", message.value()[:5])
        assert magic == 0
        assert headers_of(message)["schema"] == str(schema_id)


def test_confluent_avro_deserializer_reads_tidings_events(
    tmp_path: Path, schema_registry: str, kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shop = make_registry_shop(tmp_path, schema_registry)
    register(shop, capsys)
    events = one_of_each()
    with Publisher(shop.topology, "shop") as publisher:
        deliveries = publisher.publish_many(events)
    deserialize = AvroDeserializer(make_client(schema_registry))
    by_id = {}
    for topic in (shop.orders_topic, shop.inventory_topic):
        for message in read_all(kafka_bootstrap, topic, expect=2):
            record = deserialize(message.value(), SerializationContext(topic, MessageField.VALUE))
            by_id[headers_of(message)["event-id"]] = record
    for event, delivery in zip(events, deliveries, strict=True):
        assert type(event).from_avro(by_id[delivery.event_id]) == event


def test_confluent_avro_serializer_events_are_read_by_the_runtime(
    tmp_path: Path, schema_registry: str, kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shop = make_registry_shop(tmp_path, schema_registry)
    register(shop, capsys)
    client = make_client(schema_registry)
    catalogue = SchemaCatalogue.from_events(shop.topology.declared_events())

    def serializer(event: str) -> AvroSerializer:
        # Another team's service: it finds the schema Tidings registered, never registers.
        return AvroSerializer(client, json.dumps(catalogue.writer(event).raw), conf={
            "auto.register.schemas": False,
            "subject.name.strategy": topic_record_subject_name_strategy,
        })

    created = [an_order(customer_id=f"from-java-{n}") for n in range(3)]
    cancelled = OrderCancelled(order_id=created[0].order_id, reason="dup", cancelled_at=WHEN)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    topic = shop.orders_topic
    context = SerializationContext(topic, MessageField.VALUE)
    for event in (*created, cancelled):
        value = serializer(event.event_type)(event.to_avro(), context)
        producer.produce(topic, key=event.order_id.encode(), value=value)
    assert producer.flush(30) == 0

    with running(shop.runtime()):
        seen = eventually(lambda: len(shop.seen()) >= 4 and shop.seen(), 120, "all four events")
    assert sorted((row[1], json.loads(row[3])["order_id"]) for row in seen) == sorted(
        [("order.created", e.order_id) for e in created]
        + [("order.cancelled", cancelled.order_id)])
    for row in seen:
        model = OrderCreated if row[1] == "order.created" else OrderCancelled
        expected = next(e for e in (*created, cancelled) if type(e) is model
                        and e.order_id == json.loads(row[3])["order_id"])
        assert json.loads(row[3]) == json.loads(expected.model_dump_json())
        # No Tidings headers: the runtime names the event by where it is stored.
        assert row[0].startswith(f"{topic}:")


def test_evolution_from_v1_to_v2(
    tmp_path: Path, schema_registry: str, kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    v1 = make_registry_shop(tmp_path, schema_registry, created_version="v1")
    v2 = make_registry_shop(tmp_path, schema_registry, created_version="v2", prefix=v1.prefix,
                            apply=False)
    assert "v1 id" in register(v1, capsys)
    with Publisher(v1.topology, "shop") as service:
        old = service.publish(an_order(customer_id="written-by-v1"))
    out = register(v2, capsys)
    assert "v1 id" in out and "(already registered), v2 id" in out
    with Publisher(v2.topology, "shop") as service:
        new = service.publish(an_order(customer_id="written-by-v2", coupon_code="SPRING",
                                       total_cents=2000))
    with running(v2.runtime()):
        seen = eventually(lambda: len(v2.seen()) >= 2 and v2.seen(), 120, "both events")
    rows = {row[0]: row for row in seen}
    v1_id = registry_id(schema_registry, v1, "order.created", 1)
    v2_id = registry_id(schema_registry, v2, "order.created", 2)
    assert v1_id != v2_id
    _, _, header, body = rows[old.event_id]
    assert header == str(v1_id)
    assert json.loads(body)["coupon_code"] is None, "v2 reader fills the new field's default"
    _, _, header, body = rows[new.event_id]
    assert header == str(v2_id)
    assert json.loads(body)["coupon_code"] == "SPRING"

    # A consumer still on v1 reads the v2 event by its registry id, into v1.
    (message,) = [m for m in read_all(kafka_bootstrap, v2.orders_topic, expect=2)
                  if headers_of(m)["event-id"] == new.event_id]
    v1_reader = SchemaCatalogue.from_events(v1.topology.declared_events()).version(
        "order.created", 1)
    as_v1 = v1.topology.codec().decode(message.value(), reader=v1_reader)
    assert (as_v1.writer_version, as_v1.reader_version) == (2, 1)
    assert "coupon_code" not in as_v1.record


def _edited_schemas(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """``root/schemas`` with order.created v1 only, edited in place."""
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__", "order.created.v2.avsc"))
    path = root / "schemas" / "order.created.v1.avsc"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw, indent=2))


def _total_as_text(raw: dict[str, Any]) -> None:
    next(f for f in raw["fields"] if f["name"] == "total_cents")["type"] = "string"


def test_a_breaking_schema_is_refused_by_the_registry_with_one_clear_message(
    tmp_path: Path, schema_registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = make_registry_shop(tmp_path / "main", schema_registry)
    register(shop, capsys)
    # Someone edits v1 in place: on its own the file is consistent, so only the
    # registry, which holds the real v1 and v2, can see that it breaks them.
    _edited_schemas(tmp_path / "edited", _total_as_text)
    edited = make_registry_shop(tmp_path / "edited", schema_registry, created_version="v1",
                                prefix=shop.prefix, apply=False, auto_register=True)
    subject = f"{shop.prefix}orders-tidings.events.order.OrderCreated"

    assert main(["schemas", "register", "--no-imports", "-f", str(edited.path)]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"tidings: order.created v1 refused by the registry at {schema_registry} under "
        f"subject '{subject}' (BACKWARD_TRANSITIVE): ")
    assert "STRING" in lines[0] and "LONG" in lines[0] and "/fields/5/type" in lines[0]
    assert "Exception" not in lines[0]

    with Publisher(edited.topology, "shop") as publisher, \
            pytest.raises(SchemaRejected) as refused:
        publisher.publish(an_order())
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"registry refused order.created v1 under subject '{subject}' "
                              f"at {schema_registry}: ")
    assert "/fields/5/type" in message


def test_publishing_an_unregistered_schema_says_how_to_register_it(
    tmp_path: Path, schema_registry: str
) -> None:
    shop = make_registry_shop(tmp_path, schema_registry, apply=False)
    with Publisher(shop.topology, "shop") as publisher, \
            pytest.raises(SchemaRejected) as refused:
        publisher.publish(an_order())
    assert str(refused.value) == (
        "registry refused order.created v2: it is not registered under subject "
        f"'{shop.prefix}orders-tidings.events.order.OrderCreated' at {schema_registry}; run "
        "`tidings schemas register`, or set cluster.auto_register_schemas: true to register "
        "on first publish")


# ------------------------------------------------------------- the two checks agree


def _with_field(raw: dict[str, Any], field: dict[str, Any]) -> None:
    raw["fields"].append(field)


def _field(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in raw["fields"] if f["name"] == name)


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "add-optional": lambda r: _with_field(r, {"name": "note", "type": ["null", "string"],
                                              "default": None}),
    "add-required": lambda r: _with_field(r, {"name": "note", "type": "string"}),
    "add-with-default": lambda r: _with_field(r, {"name": "channel", "type": "string",
                                                  "default": "web"}),
    "remove-field": lambda r: r["fields"].remove(_field(r, "customer_email")),
    "long-to-string": lambda r: _field(r, "total_cents").update(type="string"),
    "long-to-int": lambda r: _field(r, "total_cents").update(type="int"),
    "int-to-long": lambda r: _field(r, "items")["type"]["items"]["fields"][1].update(
        type="long"),
    "string-to-optional": lambda r: _field(r, "currency").update(type=["null", "string"]),
    "rename-without-alias": lambda r: _field(r, "customer_id").update(name="client_id"),
    "rename-with-alias": lambda r: _field(r, "customer_id").update(
        name="client_id", aliases=["customer_id"]),
}


@pytest.mark.parametrize("mode", ["BACKWARD", "FORWARD", "FULL"])
def test_the_registry_and_the_local_check_agree_on_every_edit(
    tmp_path: Path, schema_registry: str, mode: str
) -> None:
    client = make_client(schema_registry)
    base = json.loads((REPO / "schemas" / "order.created.v1.avsc").read_text())
    verdicts: dict[str, tuple[bool, bool]] = {}
    for name, edit in EDITS.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "order.created.v1.avsc").write_text(json.dumps(base))
        edited = copy.deepcopy(base)
        edit(edited)
        (folder / "order.created.v2.avsc").write_text(json.dumps(edited))
        # The topology still writes v1; v2 is the edit under review.
        declared = [DeclaredEvent("order.created", folder / "order.created.v1.avsc",
                                  f"agree-{tmp_path.name}-{name}", mode)]
        catalogue = SchemaCatalogue.from_events(declared)
        register_schemas(catalogue, declared, client, url=schema_registry)
        found, warnings = check_with_registry(catalogue, declared, client, url=schema_registry)
        assert warnings == []
        (verdict,) = found
        assert verdict.version == 2
        assert verdict.level == f"{mode}_TRANSITIVE"
        local = not [f for f in compat.check_event(declared[0]) if f.severity == "error"]
        verdicts[name] = (bool(verdict.compatible), local)
    disagreements = {name: v for name, v in verdicts.items() if v[0] != v[1]}
    assert disagreements == {}, f"(registry, local) verdicts differ: {disagreements}"
    # Both kinds occur in every mode, so agreement is not "both always say yes".
    assert {registry for registry, _ in verdicts.values()} == {True, False}


def test_schemas_check_with_and_without_the_registry_on_the_same_edits(
    tmp_path: Path, schema_registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = make_registry_shop(tmp_path, schema_registry, created_version="v1", apply=False)
    register(shop, capsys)
    staged = tmp_path / "schemas" / "order.created.v2.avsc"

    def check(*extra: str) -> tuple[int, str, str]:
        code = main(["schemas", "check", "--no-imports", "-f", str(shop.path), *extra])
        out, err = capsys.readouterr()
        return code, out, err

    # v2 as shipped adds an optional coupon code: both checks accept it.
    assert check()[0] == 0
    code, out, err = check("--registry")
    assert code == 0, err
    assert ("order.created v2: the registry accepts it under subject "
            f"'{shop.prefix}orders-tidings.events.order.OrderCreated' (BACKWARD_TRANSITIVE); "
            "the local check agrees") in out
    assert "the registry at" in out and "agrees on 1 new version" in out

    raw = json.loads(staged.read_text())
    _field(raw, "coupon_code").pop("default")
    _field(raw, "coupon_code")["type"] = "string"
    staged.write_text(json.dumps(raw))
    code, _, local_err = check()
    assert code == 1
    assert "order.created: v2 cannot read v1 (BACKWARD): field 'coupon_code': reader has it " \
           "without a default" in local_err
    code, out, err = check("--registry")
    assert code == 1
    assert "order.created: v2 cannot read v1 (BACKWARD): field 'coupon_code'" in err
    assert "order.created v2: the registry refuses it under subject " \
           f"'{shop.prefix}orders-tidings.events.order.OrderCreated' (BACKWARD_TRANSITIVE); " \
           "the local check agrees (see above)" in err
    assert "schemas compatible" not in out


def test_a_registry_that_cannot_be_reached_is_one_line(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    shop = make_registry_shop(tmp_path, "http://127.0.0.1:9/apis/ccompat/v7", apply=False)
    assert main(["schemas", "register", "-f", str(shop.path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("tidings: schema registry at http://127.0.0.1:9/apis/ccompat/v7: ")



def test_a_consumer_that_cannot_reach_the_registry_stops_instead_of_dead_lettering(
    tmp_path: Path, schema_registry: str, kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shop = make_registry_shop(tmp_path, schema_registry)
    register(shop, capsys)
    with Publisher(shop.topology, "shop") as publisher:
        publisher.publish(an_order())
    # The same group, but its registry is down: the event is not the event's fault.
    blind = make_registry_shop(tmp_path, "http://127.0.0.1:9/apis/ccompat/v7",
                               prefix=shop.prefix, apply=False)
    failure: list[BaseException] = []
    runtime = blind.runtime()

    def run() -> None:
        try:
            runtime.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=120)
    if thread.is_alive():
        runtime.stop()
        thread.join(timeout=60)
        pytest.fail("the runtime kept running without its registry")
    (error,) = failure
    assert isinstance(error, RegistryUnavailable)
    assert str(error).startswith("schema registry at http://127.0.0.1:9/apis/ccompat/v7: ")
    assert read_all(kafka_bootstrap, f"{shop.orders_topic}.{shop.group}.dlq") == []
    assert blind.seen() == []

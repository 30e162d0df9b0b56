"""The Confluent wire format (magic 0, 4-byte big-endian schema id, Avro body).

There is no schema registry server here: these tests use confluent-kafka's built-in
in-memory client (``SchemaRegistryClient.new_client({"url": "mock://..."})``, a
``MockSchemaRegistryClient``). It stores schemas and hands out ids like a registry
but does not enforce subject compatibility, so what it proves is the framing, the
id caching and the error mapping, not the behaviour of a real server.
"""

from __future__ import annotations

import json
import random
import struct
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema

from schemas import LineItem, OrderCancelled, OrderCreated
from tidings.codec import (
    CorruptPayload,
    DecodeError,
    EncodeError,
    RegistryCodec,
    RegistryUnavailable,
    SchemaCatalogue,
    TruncatedPayload,
    UnknownSchema,
    WrongMagic,
)
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
CATALOGUE = SchemaCatalogue.from_events(load_topology(REPO / "topology.yaml",
                                                      check_imports=False).declared_events())
TOPICS = {"order.created": "orders", "order.cancelled": "orders"}
CREATED = OrderCreated(
    order_id="o-1", customer_id="cus_1", customer_email="ada@example.com", currency="EUR",
    items=[LineItem(sku="MUG", quantity=2, unit_price_cents=500)], total_cents=900,
    created_at=WHEN, coupon_code="TEN",
)
CANCELLED = OrderCancelled(order_id="o-1", reason="duplicate", cancelled_at=WHEN)


def codec(**options: Any) -> RegistryCodec:
    # A fresh URL per codec: each mock client is its own, empty registry.
    return RegistryCodec.from_url(CATALOGUE, f"mock://{uuid.uuid4()}", topics=TOPICS, **options)


def test_the_payload_is_magic_zero_then_the_registered_id() -> None:
    the_codec = codec()
    payload = the_codec.encode("order.created", CREATED.to_avro())
    magic, schema_id = struct.unpack(">bI", payload[:5])
    assert magic == 0
    registered = the_codec.client.get_latest_version("orders-value")
    assert registered.schema_id == schema_id
    assert json.loads(registered.schema.schema_str) == CATALOGUE.writer("order.created").raw
    decoded = the_codec.decode(payload)
    assert (decoded.event, decoded.writer_version) == ("order.created", 2)
    assert OrderCreated.from_avro(decoded.record) == CREATED


def test_a_reader_version_resolves_the_registry_schema() -> None:
    the_codec = codec()
    payload = the_codec.encode("order.created", CREATED.to_avro())
    decoded = the_codec.decode(payload, CATALOGUE.version("order.created", 1))
    assert decoded.reader_version == 1
    assert "coupon_code" not in decoded.record


def test_ids_are_cached_and_another_codec_reads_by_id() -> None:
    writer = codec()
    first = writer.encode("order.created", CREATED.to_avro())
    assert writer.encode("order.created", CREATED.to_avro())[:5] == first[:5]
    reader = RegistryCodec(CATALOGUE, writer.client)  # a consumer: never registers
    assert reader.decode(first).record["coupon_code"] == "TEN"


def test_subject_strategies() -> None:
    by_topic = codec()
    by_topic.encode("order.cancelled", CANCELLED.to_avro())
    assert by_topic.client.get_subjects() == ["orders-value"]
    by_record = codec(subject_strategy="topic_record")
    by_record.encode("order.created", CREATED.to_avro())
    by_record.encode("order.cancelled", CANCELLED.to_avro(), topic="orders-eu")
    assert sorted(by_record.client.get_subjects()) == [
        "orders-eu-tidings.events.order.OrderCancelled",
        "orders-tidings.events.order.OrderCreated",
    ]


def test_without_auto_register_an_unregistered_schema_cannot_be_encoded() -> None:
    with pytest.raises(EncodeError, match=r"registry refused order\.created v2"):
        codec(auto_register=False).encode("order.created", CREATED.to_avro())
    with pytest.raises(EncodeError, match="no topic given"):
        RegistryCodec(CATALOGUE, "mock://x").encode("order.created", CREATED.to_avro())


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", TruncatedPayload),
        (b"\x00\x00\x00", TruncatedPayload),
        (b"\xc3\x01" + bytes(8), WrongMagic),
        (b"\x01" + bytes(8), WrongMagic),
        (b"\x00\x00\x00\x03\xe7\x02", UnknownSchema),  # id 999 was never registered
    ],
    ids=["empty", "short", "single-object", "magic-1", "unknown-id"],
)
def test_bad_headers(payload: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        codec().decode(payload)


def test_a_foreign_schema_and_a_corrupt_body() -> None:
    the_codec = codec()
    foreign = Schema(json.dumps({"type": "record", "name": "Other",
                                 "fields": [{"name": "x", "type": "int"}]}), "AVRO")
    foreign_id = the_codec.client.register_schema("other-value", foreign)
    with pytest.raises(UnknownSchema, match="not a schema of this topology"):
        the_codec.decode(struct.pack(">bI", 0, foreign_id) + b"\x02")
    payload = the_codec.encode("order.created", CREATED.to_avro())
    with pytest.raises(CorruptPayload):
        the_codec.decode(payload[:5] + b"\xff" * 20)
    with pytest.raises(CorruptPayload, match="left over"):
        the_codec.decode(payload + b"\x00")
    for length in range(len(payload)):
        with pytest.raises(DecodeError):
            the_codec.decode(payload[:length])


def test_random_bytes_never_escape_as_another_exception() -> None:
    the_codec = codec()
    valid = the_codec.encode("order.created", CREATED.to_avro())
    rng = random.Random(7)
    for _ in range(2000):
        if rng.random() < 0.5:
            payload = valid[:5] + rng.randbytes(rng.randrange(0, 60))
        else:
            payload = b"\x00" + rng.randbytes(rng.randrange(0, 30))
        try:
            the_codec.decode(payload)
        except DecodeError as exc:
            assert exc.reason


class _DownRegistry:
    def get_schema(self, schema_id: int) -> Any:
        raise ConnectionRefusedError(111, "Connection refused")

    def register_schema(self, subject: str, schema: Any) -> int:
        raise ConnectionRefusedError(111, "Connection refused")


def test_an_unreachable_registry_is_not_a_decode_error() -> None:
    # A consumer must retry, not dead-letter, when the registry itself is down.
    down = RegistryCodec(CATALOGUE, _DownRegistry(), topics=TOPICS)
    with pytest.raises(RegistryUnavailable):
        down.decode(b"\x00\x00\x00\x00\x01\x02")
    with pytest.raises(RegistryUnavailable):
        down.encode("order.created", CREATED.to_avro())

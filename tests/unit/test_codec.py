"""The single-object codec: round trips, schema evolution, the exact header, and that
any bytes at all decode or fail with a DecodeError (the consumer's DLQ contract)."""

from __future__ import annotations

import io
import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import avro.io
import avro.schema
import pytest

from schemas import (
    InventoryRejected,
    InventoryReserved,
    LineItem,
    OrderCancelled,
    OrderCreated,
    ReservedItem,
)
from tidings.codec import (
    CorruptPayload,
    DecodeError,
    EncodeError,
    RegistryCodec,
    SchemaCatalogue,
    SingleObjectCodec,
    TruncatedPayload,
    UnexpectedEvent,
    UnknownSchema,
    WrongMagic,
    codec_for,
    fingerprint,
)
from tidings.codec.events import Event
from tidings.codec.fingerprint import canonical_form
from tidings.codec.single_object import HEADER_SIZE, MAGIC
from tidings.topology import Topology, load_topology

REPO = Path(__file__).resolve().parents[2]
# Avro stores milliseconds; a sample with microseconds would not survive the trip.
WHEN = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)

SAMPLES: list[Event] = [
    OrderCreated(
        order_id="0b6c6f6e-6a55-4d8f-9a57-1d1c7bb0c001", customer_id="cus_42",
        customer_email="ada@example.com", currency="EUR",
        items=[LineItem(sku="BOOK-1", quantity=2, unit_price_cents=1250),
               LineItem(sku="PEN-7", quantity=1, unit_price_cents=199)],
        total_cents=2699, created_at=WHEN, coupon_code=None,
    ),
    OrderCreated(
        order_id="o-2", customer_id="cus_43", customer_email="bob@example.org", currency="USD",
        items=[LineItem(sku="MUG", quantity=3, unit_price_cents=800)],
        total_cents=2000, created_at=WHEN, coupon_code="SPRING10",
    ),
    OrderCancelled(order_id="o-3", reason="customer changed their mind", cancelled_at=WHEN),
    InventoryReserved(order_id="o-4", items=[ReservedItem(sku="MUG", quantity=3)],
                      reserved_at=WHEN),
    InventoryRejected(order_id="o-5", sku="MUG", requested=3, available=1, rejected_at=WHEN),
]
V1_ORDER = {k: v for k, v in SAMPLES[0].to_avro().items() if k != "coupon_code"}


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load_topology(REPO / "topology.yaml", check_imports=False)


@pytest.fixture(scope="module")
def catalogue(topology: Topology) -> SchemaCatalogue:
    return SchemaCatalogue.from_events(topology.declared_events())


@pytest.fixture(scope="module")
def codec(catalogue: SchemaCatalogue) -> SingleObjectCodec:
    return SingleObjectCodec(catalogue)


def v1_writer(catalogue: SchemaCatalogue) -> SingleObjectCodec:
    """A codec of a publisher not yet upgraded: it writes order.created v1."""
    writers = {event: catalogue.writer(event).version for event in catalogue.events}
    return SingleObjectCodec(SchemaCatalogue(list(catalogue), {**writers, "order.created": 1}))


def test_the_catalogue_holds_every_version(catalogue: SchemaCatalogue) -> None:
    assert [v.version for v in catalogue.versions("order.created")] == [1, 2]
    assert catalogue.writer("order.created").version == 2
    assert catalogue.version("order.created", 1).path.name == "order.created.v1.avsc"
    for schema in catalogue:
        assert catalogue.by_fingerprint(schema.fingerprint) is schema
    with pytest.raises(KeyError):
        catalogue.version("order.created", 3)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{e.event_type}")
def test_every_event_type_round_trips(codec: SingleObjectCodec, event: Event) -> None:
    payload = codec.encode(event.event_type, event.to_avro())
    decoded = codec.decode(payload)
    assert (decoded.event, decoded.writer_version) == (event.event_type, event.schema_version)
    assert type(event).from_avro(decoded.record) == event


def test_v1_written_reads_as_v2_with_no_coupon(
    catalogue: SchemaCatalogue, codec: SingleObjectCodec
) -> None:
    payload = v1_writer(catalogue).encode("order.created", V1_ORDER)
    assert payload[2:HEADER_SIZE] == catalogue.version("order.created", 1).fingerprint
    decoded = codec.decode(payload, catalogue.version("order.created", 2))
    assert (decoded.writer_version, decoded.reader_version) == (1, 2)
    assert decoded.record["coupon_code"] is None
    assert OrderCreated.from_avro(decoded.record) == SAMPLES[0]


def test_v2_written_reads_as_v1_without_the_coupon(
    catalogue: SchemaCatalogue, codec: SingleObjectCodec
) -> None:
    payload = codec.encode("order.created", SAMPLES[1].to_avro())
    decoded = codec.decode(payload, catalogue.version("order.created", 1))
    assert (decoded.writer_version, decoded.reader_version) == (2, 1)
    assert "coupon_code" not in decoded.record
    assert decoded.record == {k: v for k, v in SAMPLES[1].to_avro().items() if k != "coupon_code"}


def test_the_header_is_magic_then_the_writer_fingerprint(
    catalogue: SchemaCatalogue, codec: SingleObjectCodec
) -> None:
    payload = codec.encode("order.cancelled", SAMPLES[2].to_avro())
    assert payload[:2] == b"\xc3\x01" == MAGIC
    assert payload[2:10] == catalogue.writer("order.cancelled").fingerprint
    assert len(catalogue.writer("order.cancelled").fingerprint) == 8


# Published in the Avro repository, share/test/data/schema-tests.txt, as the signed
# 64-bit value of the little-endian fingerprint.
SPEC_VECTORS = [
    ("null", 7195948357588979594),
    ("boolean", -6970731678124411036),
    ("int", 8247732601305521295),
    ("long", -3434872931120570953),
    ("float", 5583340709985441680),
    ("double", -8181574048448539266),
    ("bytes", 5746618253357095269),
    ("string", -8142146995180207161),
    ({"type": "fixed", "name": "foo", "size": 15}, 1756455273707447556),
    ({"type": "record", "name": "foo", "fields": [{"name": "f1", "type": "boolean"}]},
     7843277075252814651),
]


@pytest.mark.parametrize(("schema", "expected"), SPEC_VECTORS, ids=lambda v: str(v)[:20])
def test_fingerprint_matches_the_avro_specification(schema: object, expected: int) -> None:
    fp = fingerprint(schema)  # type: ignore[arg-type]
    assert int.from_bytes(fp, "little", signed=True) == expected


def _rabin(data: bytes) -> bytes:
    """CRC-64-AVRO straight from the specification's reference code."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    result = empty
    for byte in data:
        result = (result >> 8) ^ table[(result ^ byte) & 0xFF]
    return result.to_bytes(8, "little")


def _without_logical_types(schema: object) -> object:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema


def test_fingerprints_agree_with_apache_avro_and_the_reference_algorithm(
    catalogue: SchemaCatalogue,
) -> None:
    for schema in catalogue:
        assert _rabin(canonical_form(schema.raw).encode()) == schema.fingerprint, schema.label
        # The specification strips logicalType, leaving "long"; Apache avro's Python
        # canonical_form (1.12) keeps {"type":"long"} instead, unlike Java and fastavro.
        # Stripping first makes the two agree and still compares everything else.
        theirs = avro.schema.parse(json.dumps(_without_logical_types(schema.raw)))
        assert theirs.fingerprint("CRC-64-AVRO") == schema.fingerprint, schema.label


def test_apache_avro_reads_our_payload_after_the_header(
    catalogue: SchemaCatalogue, codec: SingleObjectCodec
) -> None:
    payload = codec.encode("order.created", SAMPLES[1].to_avro())
    writer = avro.schema.parse(catalogue.writer("order.created").path.read_text())
    decoder = avro.io.BinaryDecoder(io.BytesIO(payload[10:]))
    datum = cast(dict[str, Any], avro.io.DatumReader(writer).read(decoder))
    assert datum["coupon_code"] == "SPRING10"
    assert datum["items"][0] == {"sku": "MUG", "quantity": 3, "unit_price_cents": 800}
    assert datum["created_at"] == WHEN


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", TruncatedPayload),
        (b"\xc3", TruncatedPayload),
        (b"\xc3\x01\x00\x01\x02", TruncatedPayload),
        (b"\x00\x00\x00\x00\x01\x02", WrongMagic),  # a Confluent-framed payload
        (b"{\"order_id\": \"o-1\"}", WrongMagic),
        (b"\xc3\x02" + bytes(8) + b"\x02", WrongMagic),
        (b"\xc3\x01" + bytes(8) + b"\x02", UnknownSchema),
    ],
    ids=["empty", "one-byte", "short-header", "confluent", "json", "version-2", "unknown-fp"],
)
def test_bad_headers(codec: SingleObjectCodec, payload: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error) as caught:
        codec.decode(payload)
    assert caught.value.reason


def test_garbage_body_and_trailing_bytes_are_corrupt(
    catalogue: SchemaCatalogue, codec: SingleObjectCodec
) -> None:
    header = MAGIC + catalogue.writer("order.created").fingerprint
    with pytest.raises(CorruptPayload, match=re.escape("does not decode as order.created v2")):
        codec.decode(header + b"\xff" * 40)
    good = codec.encode("order.created", SAMPLES[0].to_avro())
    with pytest.raises(CorruptPayload, match=re.escape("1 byte(s) left over")):
        codec.decode(good + b"\x00")


def test_a_reader_for_another_event_is_refused(
    catalogue: SchemaCatalogue, codec: SingleObjectCodec
) -> None:
    payload = codec.encode("order.cancelled", SAMPLES[2].to_avro())
    expected = "order.cancelled v1, not the order.created"
    with pytest.raises(UnexpectedEvent, match=re.escape(expected)):
        codec.decode(payload, catalogue.writer("order.created"))


def test_every_truncation_of_a_valid_payload_is_a_decode_error(
    codec: SingleObjectCodec,
) -> None:
    for event in SAMPLES:
        payload = codec.encode(event.event_type, event.to_avro())
        for length in range(len(payload)):
            with pytest.raises(DecodeError) as caught:
                codec.decode(payload[:length])
            expected = TruncatedPayload if length < HEADER_SIZE else CorruptPayload
            assert type(caught.value) is expected, (event.event_type, length)


def test_random_bytes_never_escape_as_another_exception(
    catalogue: SchemaCatalogue, codec: SingleObjectCodec
) -> None:
    rng = random.Random(20260314)
    headers = [MAGIC + schema.fingerprint for schema in catalogue] + [b"", MAGIC]
    valid = [codec.encode(e.event_type, e.to_avro()) for e in SAMPLES]
    for _ in range(4000):
        choice = rng.random()
        if choice < 0.5:  # a known header, then noise: exercises the Avro reader itself
            payload = rng.choice(headers) + rng.randbytes(rng.randrange(0, 80))
        elif choice < 0.8:  # a valid payload with a few bytes of its body flipped
            flipped = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                flipped[rng.randrange(HEADER_SIZE, len(flipped))] = rng.randrange(256)
            payload = bytes(flipped)
        else:
            payload = rng.randbytes(rng.randrange(0, 40))
        try:
            decoded = codec.decode(payload)
        except DecodeError as exc:
            assert exc.reason
        else:
            assert decoded.event in catalogue.events


def test_encoding_a_bad_record_or_unknown_event_is_an_encode_error(
    codec: SingleObjectCodec,
) -> None:
    with pytest.raises(EncodeError, match=re.escape("unknown event 'order.shipped'")):
        codec.encode("order.shipped", {})
    record = SAMPLES[2].to_avro() | {"cancelled_at": "yesterday"}
    with pytest.raises(EncodeError, match=re.escape("cannot encode order.cancelled v1")):
        codec.encode("order.cancelled", record)


def test_codec_for_picks_the_wire_format(topology: Topology, catalogue: SchemaCatalogue) -> None:
    assert isinstance(codec_for(topology.declared_events(), None, catalogue), SingleObjectCodec)
    chosen = codec_for(topology.declared_events(), "mock://codec-for", catalogue)
    assert isinstance(chosen, RegistryCodec)
    assert chosen.topics["order.created"] == "orders"

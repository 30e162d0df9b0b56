"""What the preparer puts on every event: ids, time stamps and the constant headers."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from schemas import LineItem, OrderCreated
from tidings import headers as h
from tidings.producer.prepare import EventPreparer, _Timestamps, new_ids
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")


def an_order(order_id: str = "o-1") -> OrderCreated:
    return OrderCreated(order_id=order_id, customer_id="c-1", customer_email="a@example.com",
                        currency="EUR", items=[LineItem(sku="S", quantity=2,
                                                        unit_price_cents=150)],
                        total_cents=300, created_at=datetime(2026, 11, 23, tzinfo=UTC))


def test_event_ids_are_uuid7_unique_and_in_time_order() -> None:
    ids = [new_ids()[0] for _ in range(3000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    stamps = [int(u.hex[:12], 16) for u in parsed]
    assert stamps == sorted(stamps), "made one after another, they sort by time"
    assert abs(stamps[-1] - time.time() * 1000) < 60_000


def test_traceparents_are_w3c_version_00_sampled() -> None:
    assert all(TRACEPARENT.match(new_ids()[1]) for _ in range(100))


def test_occurred_at_is_rfc3339_utc_with_milliseconds_like_format_timestamp() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = _Timestamps().now().decode()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before <= moment <= datetime.now(UTC)
    assert h.format_timestamp(moment) == stamp


def test_prepared_headers_are_the_six_standard_ones_in_order() -> None:
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    preparer = EventPreparer(topology, "order-service")
    first, second = preparer.prepare(an_order("o-1")), preparer.prepare(an_order("o-2"))
    names = [name for name, _ in first.headers]
    assert names == [h.EVENT_ID, h.EVENT_TYPE, h.SCHEMA, h.OCCURRED_AT, h.PRODUCER,
                     h.TRACEPARENT]
    values = dict(first.headers)
    assert values[h.EVENT_ID].decode() == first.event_id
    assert values[h.EVENT_TYPE] == b"order.created" and values[h.PRODUCER] == b"order-service"
    assert first.event_id != second.event_id
    assert dict(second.headers)[h.SCHEMA] == values[h.SCHEMA]
    given = preparer.prepare(an_order(), event_id="given", traceparent="00-" + "1" * 32 +
                             "-" + "2" * 16 + "-01",
                             occurred_at=datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
    assert dict(given.headers)[h.OCCURRED_AT] == b"2026-01-02T03:04:05.006Z"
    assert given.event_id == "given" and first.key == b"o-1"

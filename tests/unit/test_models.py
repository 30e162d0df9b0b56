"""Typed models: each agrees with its schema, validates meaningfully, and drift is caught."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import textwrap
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import AwareDatetime, ValidationError

from schemas import InventoryRejected, LineItem, OrderCancelled, OrderCreated
from tidings.codec import SchemaCatalogue
from tidings.codec.events import Event, Record, model_problems
from tidings.topology import TopologyInvalid, load_topology

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
TOPOLOGY = load_topology(REPO / "topology.yaml", check_imports=False)
CATALOGUE = SchemaCatalogue.from_events(TOPOLOGY.declared_events())


def schema(name: str) -> dict[str, Any]:
    return dict(json.loads((REPO / "schemas" / f"{name}.avsc").read_text()))


def order(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "order_id": "o-1", "customer_id": "cus_1", "customer_email": "ada@example.com",
        "currency": "EUR", "items": [{"sku": "MUG", "quantity": 2, "unit_price_cents": 500}],
        "total_cents": 1000, "created_at": WHEN,
    }
    return fields | changes


@pytest.mark.parametrize("event", sorted(TOPOLOGY.events))
def test_every_declared_model_agrees_with_its_current_schema(event: str) -> None:
    reference = TOPOLOGY.events[event].model
    assert reference is not None, f"{event} declares no model"
    module, _, name = reference.partition(":")
    model = getattr(importlib.import_module(module), name)
    writer = CATALOGUE.writer(event)
    assert (model.event_type, model.schema_version) == (event, writer.version)
    assert model_problems(model, dict(writer.raw)) == []


def test_the_v2_model_does_not_match_v1() -> None:
    assert model_problems(OrderCreated, schema("order.created.v1")) == [
        "OrderCreated.coupon_code: model has str | None with default None, "
        "schema has no such field"
    ]


def test_a_required_coupon_is_reported_as_the_schema_sees_it() -> None:
    class RequiredCoupon(Event):
        event_type = "order.created"
        schema_version = 2
        order_id: str
        customer_id: str
        customer_email: str
        currency: str
        items: list[LineItem]
        total_cents: int
        created_at: AwareDatetime
        coupon_code: str

    assert model_problems(RequiredCoupon, schema("order.created.v2")) == [
        "RequiredCoupon.coupon_code: schema says optional string with default null, "
        "model says str (required)"
    ]


def test_every_kind_of_drift_is_reported() -> None:
    class Item(Record):
        sku: str
        quantity: str

    class Drifted(Event):
        event_type = "order.created"
        schema_version = 2
        order_id: int
        customer_id: str | None = None
        currency: str = "EUR"
        items: list[Item]
        total_cents: float
        created_at: datetime | None
        coupon_code: str | None = "NONE"
        channel: str

    assert model_problems(Drifted, schema("order.created.v2")) == [
        "Drifted.order_id: schema says string (required), model says int (required)",
        "Drifted.customer_id: schema says string (required), "
        "model says str | None with default None",
        "Drifted.customer_email: schema has string (required), model has no such field",
        "Drifted.currency: schema says string (required), model says str with default 'EUR'",
        "Drifted.items[].quantity: schema says int (required), model says str (required)",
        "Drifted.items[].unit_price_cents: schema has long (required), "
        "model has no such field",
        "Drifted.total_cents: schema says long (required), model says float (required)",
        "Drifted.created_at: schema says timestamp-millis (required), "
        "model says datetime | None (required)",
        "Drifted.coupon_code: schema says optional string with default null, "
        "model says str | None with default 'NONE'",
        "Drifted.channel: model has str (required), schema has no such field",
    ]


def test_enums_maps_and_constraints() -> None:
    class Colour(Enum):
        RED = "RED"
        GREEN = "GREEN"

    avsc = {"type": "record", "name": "Paint", "fields": [
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "shade", "type": "Colour"},
        {"name": "labels", "type": {"type": "map", "values": "string"}},
        {"name": "tags", "type": {"type": "array", "items": ["null", "string"]}},
        {"name": "kind", "type": "string"},
    ]}

    class Paint(Record):
        colour: Colour
        shade: Literal["RED", "GREEN"]
        labels: dict[str, str]
        tags: list[str | None]
        kind: Literal["matt", "gloss"]  # a closed set of strings narrows "string"

    assert model_problems(Paint, avsc) == []

    class WrongPaint(Record):
        colour: Literal["RED"]
        shade: Colour
        labels: dict[str, int]
        tags: list[str]
        kind: int

    assert [p.split(":")[0] for p in model_problems(WrongPaint, avsc)] == [
        "WrongPaint.colour", "WrongPaint.labels", "WrongPaint.tags", "WrongPaint.kind",
    ]


def test_models_validate_meaningfully() -> None:
    assert OrderCreated(**order()).total_cents == 1000
    bad = [
        order(items=[]),
        order(items=[{"sku": "MUG", "quantity": 0, "unit_price_cents": 500}]),
        order(items=[{"sku": "MUG", "quantity": 1, "unit_price_cents": -1}], total_cents=0),
        order(currency="euro"),
        order(customer_email="not-an-address"),
        order(created_at=datetime(2026, 3, 14, 15, 9)),  # naive: whose 15:09?
        order(total_cents=999),  # no coupon, so it must add up
        order(total_cents=1001, coupon_code="X"),  # a coupon never raises the total
        order(coupon_code=""),
        order(unknown_field=1),
    ]
    for fields in bad:
        with pytest.raises(ValidationError):
            OrderCreated(**fields)
    assert OrderCreated(**order(total_cents=900, coupon_code="TEN")).coupon_code == "TEN"
    with pytest.raises(ValidationError, match="that is a reservation"):
        InventoryRejected(order_id="o", sku="MUG", requested=2, available=2, rejected_at=WHEN)
    with pytest.raises(ValidationError):
        OrderCancelled(order_id="o", reason="", cancelled_at=WHEN)


def test_models_are_frozen_and_round_trip_through_avro_records() -> None:
    created = OrderCreated(**order())
    with pytest.raises(ValidationError):
        created.total_cents = 5  # type: ignore[misc]
    record = created.to_avro()
    assert record["items"] == [{"sku": "MUG", "quantity": 2, "unit_price_cents": 500}]
    assert record["created_at"] is created.created_at
    assert OrderCreated.from_avro(record) == created


MODEL_MODULE = '''\
from pydantic import AwareDatetime
from tidings.codec.events import Event

class Cancelled(Event):
    event_type = "order.cancelled"
    schema_version = 1
    order_id: str
    reason: str | None = None
    cancelled_at: AwareDatetime

class WrongEvent(Event):
    event_type = "order.created"
    schema_version = 1

class NotAnEvent:
    pass
'''

TOPOLOGY_TEXT = """\
topics:
  orders: {}
events:
  order.cancelled:
    topic: orders
    schema: schemas/order.cancelled.v1.avsc
    model: %s
"""


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("shop_models:Cancelled",
         "model 'shop_models:Cancelled' disagrees with schemas/order.cancelled.v1.avsc: "
         "Cancelled.reason: schema says string (required), model says str | None with "
         "default None"),
        ("shop_models:WrongEvent",
         "model 'shop_models:WrongEvent' is for event 'order.created', not 'order.cancelled'"),
        ("shop_models:NotAnEvent",
         "model 'shop_models:NotAnEvent' is not a subclass of tidings.Event"),
        ("shop_models:Missing", "model 'shop_models:Missing': module 'shop_models' has no "
         "'Missing'"),
        ("no_such_module:Cancelled",
         "model 'no_such_module:Cancelled' does not import: no module named 'no_such_module'"),
        ("not a reference",
         "events.order.cancelled.model: model 'not a reference' must look like "
         "'package.module:ClassName'"),
    ],
    ids=["drift", "wrong-event", "not-event", "missing", "no-module", "shape"],
)
def test_topology_validate_reports_a_bad_model_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: str, message: str
) -> None:
    monkeypatch.delitem(sys.modules, "shop_models", raising=False)  # each test its own file
    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "order.cancelled.v1.avsc", tmp_path / "schemas")
    (tmp_path / "shop_models.py").write_text(MODEL_MODULE)
    path = tmp_path / "topology.yaml"
    path.write_text(textwrap.dedent(TOPOLOGY_TEXT % reference))
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(path)
    assert [(p.line, p.message) for p in caught.value.problems] == [(7, message)]
    if reference != "not a reference":
        load_topology(path, check_imports=False)  # the model is only imported on request

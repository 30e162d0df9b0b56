"""Schema evolution: ``tidings schemas check`` and the same check in ``topology validate``."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidings.cli import main
from tidings.codec import compat
from tidings.topology import TopologyInvalid, load_topology

REPO = Path(__file__).resolve().parents[2]
V2 = json.loads((REPO / "schemas" / "order.created.v2.avsc").read_text())

TOPOLOGY = """\
topics:
  orders: {{}}
events:
  order.created:
    topic: orders
    schema: schemas/order.created.v{writer}.avsc
    compatibility: {mode}
"""
SCHEMA_LINE = 6


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def remove(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(schema: dict[str, Any]) -> None:
        schema["fields"].remove(field(schema, name))
    return edit


def set_type(name: str, avro_type: Any) -> Callable[[dict[str, Any]], None]:
    def edit(schema: dict[str, Any]) -> None:
        target = field(schema, name)
        target["type"] = avro_type
        target.pop("default", None)
    return edit


def rename(old: str, new: str, *, alias: bool = False) -> Callable[[dict[str, Any]], None]:
    def edit(schema: dict[str, Any]) -> None:
        target = field(schema, old)
        target["name"] = new
        if alias:
            target["aliases"] = [old]
    return edit


def add(spec: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(schema: dict[str, Any]) -> None:
        schema["fields"].append(spec)
    return edit


def item_quantity_as_string(schema: dict[str, Any]) -> None:
    field(field(schema, "items")["type"]["items"], "quantity")["type"] = "string"


def make_repo(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None] | None, mode: str,
    *, writer: int = 3,
) -> Path:
    """A copy of the shop's order.created v1 and v2, plus a v3 made by ``edit``."""
    (tmp_path / "schemas").mkdir()
    for version in (1, 2):
        shutil.copy(REPO / "schemas" / f"order.created.v{version}.avsc", tmp_path / "schemas")
    if edit is not None:
        v3 = copy.deepcopy(V2)
        edit(v3)
        (tmp_path / "schemas" / "order.created.v3.avsc").write_text(json.dumps(v3, indent=2))
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.format(writer=writer, mode=mode))
    return path


def messages(path: Path) -> list[str]:
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(path)
    assert {p.line for p in caught.value.problems} == {SCHEMA_LINE}
    return [p.message for p in caught.value.problems]


def test_the_repository_schemas_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "check", "-f", str(REPO / "topology.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "schemas compatible — 10 events, 11 versions" in out
    assert err == ""
    assert all(f.severity == "warning" for f in compat.check_events(
        load_topology(REPO / "topology.yaml", check_imports=False).declared_events()))


BREAKING = [
    pytest.param(
        set_type("total_cents", "string"), "BACKWARD",
        ["order.created: v3 cannot read v1 (BACKWARD): field 'total_cents': reader type "
         "'string' does not match writer type 'long' at /fields/5/type",
         "order.created: v3 cannot read v2 (BACKWARD): field 'total_cents': reader type "
         "'string' does not match writer type 'long' at /fields/5/type"],
        id="change-type"),
    pytest.param(
        remove("customer_email"), "FORWARD",
        ["order.created: v1 cannot read v3 (FORWARD): field 'customer_email': reader has it "
         "without a default and the writer does not write it at /fields/2",
         "order.created: v2 cannot read v3 (FORWARD): field 'customer_email': reader has it "
         "without a default and the writer does not write it at /fields/2"],
        id="remove-field-without-default"),
    pytest.param(
        rename("customer_id", "client_id"), "BACKWARD",
        ["order.created: v3 cannot read v1 (BACKWARD): field 'client_id': reader has it "
         "without a default and the writer does not write it at /fields/1",
         "order.created: v3 cannot read v2 (BACKWARD): field 'client_id': reader has it "
         "without a default and the writer does not write it at /fields/1"],
        id="rename-without-alias"),
    pytest.param(
        add({"name": "channel", "type": "string"}), "BACKWARD",
        ["order.created: v3 cannot read v1 (BACKWARD): field 'channel': reader has it "
         "without a default and the writer does not write it at /fields/8",
         "order.created: v3 cannot read v2 (BACKWARD): field 'channel': reader has it "
         "without a default and the writer does not write it at /fields/8"],
        id="add-required-field"),
    pytest.param(
        set_type("coupon_code", "string"), "BACKWARD",
        ["order.created: v3 cannot read v1 (BACKWARD): field 'coupon_code': reader has it "
         "without a default and the writer does not write it at /fields/7",
         "order.created: v3 cannot read v2 (BACKWARD): field 'coupon_code': reader type "
         "'string' does not match writer type '[null, string]' at /fields/7/type"],
        id="optional-made-required"),
    pytest.param(
        set_type("coupon_code", ["null", "long"]), "BACKWARD",
        ["order.created: v3 cannot read v1 (BACKWARD): field 'coupon_code': reader has it "
         "without a default and the writer does not write it at /fields/7",
         "order.created: v3 cannot read v2 (BACKWARD): field 'coupon_code': reader type "
         "'[null, long]' does not match writer type '[null, string]' at /fields/7/type"],
        id="change-union"),
    pytest.param(
        item_quantity_as_string, "BACKWARD",
        ["order.created: v3 cannot read v1 (BACKWARD): field 'items[].quantity': reader type "
         "'string' does not match writer type 'int' at /fields/4/type/items/fields/1/type",
         "order.created: v3 cannot read v2 (BACKWARD): field 'items[].quantity': reader type "
         "'string' does not match writer type 'int' at /fields/4/type/items/fields/1/type"],
        id="nested-type"),
    pytest.param(
        add({"name": "channel", "type": "string"}), "FULL",
        ["order.created: v3 cannot read v1 (FULL): field 'channel': reader has it without a "
         "default and the writer does not write it at /fields/8",
         "order.created: v3 cannot read v2 (FULL): field 'channel': reader has it without a "
         "default and the writer does not write it at /fields/8"],
        id="full-add-required"),
    pytest.param(
        remove("currency"), "FULL",
        ["order.created: v1 cannot read v3 (FULL): field 'currency': reader has it without a "
         "default and the writer does not write it at /fields/3",
         "order.created: v2 cannot read v3 (FULL): field 'currency': reader has it without a "
         "default and the writer does not write it at /fields/3"],
        id="full-remove-required"),
    pytest.param(
        set_type("total_cents", "int"), "BACKWARD",
        ["order.created: v3 cannot read v1 (BACKWARD): field 'total_cents': reader type 'int' "
         "does not match writer type 'long' at /fields/5/type",
         "order.created: v3 cannot read v2 (BACKWARD): field 'total_cents': reader type 'int' "
         "does not match writer type 'long' at /fields/5/type"],
        id="backward-narrow-long-to-int"),
]


@pytest.mark.parametrize(("edit", "mode", "expected"), BREAKING)
def test_breaking_edits_are_reported_with_their_reason(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], mode: str, expected: list[str]
) -> None:
    assert messages(make_repo(tmp_path, edit, mode)) == expected


@pytest.mark.parametrize(
    ("edit", "mode"),
    [
        pytest.param(remove("customer_email"), "BACKWARD", id="backward-remove"),
        pytest.param(set_type("total_cents", "int"), "FORWARD", id="forward-narrow"),
        pytest.param(add({"name": "channel", "type": "string"}), "FORWARD", id="forward-add"),
        pytest.param(add({"name": "note", "type": ["null", "string"], "default": None}),
                     "FULL", id="full-optional-add"),
        pytest.param(rename("customer_id", "client_id", alias=True), "BACKWARD",
                     id="rename-with-alias"),
        pytest.param(set_type("total_cents", "string"), "NONE", id="none"),
    ],
)
def test_compatible_edits_pass(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], mode: str
) -> None:
    load_topology(make_repo(tmp_path, edit, mode))


def test_the_cli_prints_each_problem_on_stderr_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_repo(tmp_path, set_type("total_cents", "string"), "BACKWARD")
    assert main(["schemas", "check", "-f", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[1].endswith(f"topology.yaml:{SCHEMA_LINE}: order.created: v3 cannot read v2 "
                             "(BACKWARD): field 'total_cents': reader type 'string' does not "
                             "match writer type 'long' at /fields/5/type")
    assert main(["topology", "validate", "-f", str(path)]) == 1


def test_a_gap_in_version_numbers_is_an_error(tmp_path: Path) -> None:
    path = make_repo(tmp_path, None, "BACKWARD", writer=2)
    (tmp_path / "schemas" / "order.created.v2.avsc").rename(
        tmp_path / "schemas" / "order.created.v4.avsc")
    path.write_text(TOPOLOGY.format(writer=4, mode="BACKWARD"))
    assert messages(path) == [
        "order.created: versions must be numbered v1, v2, ... without gaps; missing v2, v3"
    ]


def test_a_newer_unused_version_is_a_warning_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_repo(tmp_path, None, "BACKWARD", writer=1)
    load_topology(path)
    assert main(["schemas", "check", "-f", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ("warning: order.created: topology writes v1, but v2 exists "
                   "(order.created.v2.avsc); publishers keep writing v1\n")
    assert "1 event, 2 versions, 1 warning" in out


def test_an_unversioned_file_name_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "order.created.v1.avsc", tmp_path / "schemas" / "order.avsc")
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.format(writer=1, mode="BACKWARD").replace(
        "order.created.v1.avsc", "order.avsc"))
    assert messages(path) == [
        "order.created: schema file 'order.avsc' is not named <event>.v<N>.avsc, so its "
        "version (and its older versions) cannot be found"
    ]


def test_a_broken_older_version_is_reported(tmp_path: Path) -> None:
    path = make_repo(tmp_path, None, "BACKWARD", writer=2)
    (tmp_path / "schemas" / "order.created.v1.avsc").write_text("{not json")
    assert messages(path) == [
        "order.created: order.created.v1.avsc is not valid JSON: Expecting property name "
        "enclosed in double quotes at its line 1"
    ]


def test_compatibility_problems_is_usable_without_files() -> None:
    v3 = copy.deepcopy(V2)
    v3["name"] = "OrderPlaced"
    assert compat.compatibility_problems({2: V2, 3: v3}, "BACKWARD") == [
        "v3 cannot read v2 (BACKWARD): record name 'tidings.events.order.OrderPlaced' does "
        "not match writer's 'tidings.events.order.OrderCreated' (add an alias) at /"
    ]
    v3["aliases"] = ["tidings.events.order.OrderCreated"]
    assert compat.compatibility_problems({2: V2, 3: v3}, "FULL") == [
        "v2 cannot read v3 (FULL): record name 'tidings.events.order.OrderCreated' does "
        "not match writer's 'tidings.events.order.OrderPlaced' (add an alias) at /"
    ]

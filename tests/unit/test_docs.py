"""``tidings docs``: the AsyncAPI document (checked by the reference parser) and the
static catalogue, both from the shop's topology.yaml and schemas."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidings.cli import main
from tidings.docs import asyncapi_document, build_catalogue, write_site
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = Path(__file__).with_name("asyncapi_validate.cjs")
INSTALL = "ops/tools/install-asyncapi.sh"


def _npm_modules() -> Path:
    cache = os.environ.get("TIDINGS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tidings")
    return Path(cache) / "npm" / "asyncapi" / "node_modules"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document(build_catalogue(load_topology(REPO / "topology.yaml",
                                                           check_imports=False)))


@pytest.fixture(scope="module")
def parsed(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, dict[str, Any]]:
    """The reference parser's verdict on the shop's document (YAML and JSON) and on a
    broken copy of it, from one Node run."""
    node = shutil.which("node")
    modules = _npm_modules()
    if node is None:
        pytest.skip(f"node is not installed ({INSTALL} installs it)")
    if not (modules / "@asyncapi" / "parser").is_dir():
        pytest.skip(f"@asyncapi/parser is not installed in {modules} (run {INSTALL})")
    root = tmp_path_factory.mktemp("asyncapi")
    (root / "shop.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    (root / "shop.json").write_text(json.dumps(document))
    bad_avro = copy.deepcopy(document)
    message = bad_avro["components"]["messages"]["order.created"]
    message["payload"]["schema"]["fields"][0]["type"] = "no-such-avro-type"
    (root / "bad-avro.yaml").write_text(yaml.safe_dump(bad_avro, sort_keys=False))
    bad_ref = copy.deepcopy(document)
    bad_ref["operations"]["order-service.sends.orders"]["channel"] = {
        "$ref": "#/channels/nowhere"}
    (root / "bad-ref.yaml").write_text(yaml.safe_dump(bad_ref, sort_keys=False))
    names = ("shop.yaml", "shop.json", "bad-avro.yaml", "bad-ref.yaml")
    result = subprocess.run([node, str(VALIDATOR), *(str(root / n) for n in names)],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "NODE_PATH": str(modules)})
    verdicts = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(verdicts) == len(names), result.stdout + result.stderr
    return {Path(v["file"]).name: v for v in verdicts}


def test_the_reference_parser_accepts_the_document_in_yaml_and_json(
    parsed: dict[str, dict[str, Any]]
) -> None:
    for name in ("shop.yaml", "shop.json"):
        assert parsed[name]["errors"] == [], parsed[name]["errors"]
        assert "orders.inventory.retry.10s" in parsed[name]["channels"]
        assert "inventory.receives.orders" in parsed[name]["operations"]


def test_the_reference_parser_rejects_broken_copies(parsed: dict[str, dict[str, Any]]) -> None:
    avro = " ".join(parsed["bad-avro.yaml"]["errors"])
    assert '"payload","schema","fields","0","type"' in avro, avro
    ref = " ".join(parsed["bad-ref.yaml"]["errors"])
    assert "nowhere" in ref, ref


def test_channels_are_topics_with_retry_and_dlq_marked(document: dict[str, Any]) -> None:
    channels = document["channels"]
    assert channels["orders"]["bindings"]["kafka"]["partitions"] == 12
    retry = channels["orders.inventory.retry.10s"]
    assert retry["tags"] == [{"name": "retry"}]
    assert retry["x-tidings-role"] == {"kind": "retry", "group": "inventory",
                                       "source": "orders", "tier": "10s"}
    assert channels["orders.email.dlq"]["tags"] == [{"name": "dlq"}]
    # email only takes order.created, so its tiers carry only that event.
    assert list(channels["orders.email.retry.30s"]["messages"]) == ["order.created"]
    assert sorted(channels["orders"]["messages"]) == ["order.cancelled", "order.created"]


def test_messages_are_events_with_avro_schema_headers_and_key(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    created = messages["order.created"]
    assert created["payload"]["schemaFormat"].startswith("application/vnd.apache.avro+json")
    assert created["payload"]["schema"]["name"] == "OrderCreated"
    assert any(f["name"] == "coupon_code" for f in created["payload"]["schema"]["fields"])
    assert [v["version"] for v in created["x-tidings-schema-versions"]] == [1, 2]
    assert set(created["headers"]["properties"]) >= {"event-id", "event-type", "traceparent"}
    assert "attempt" not in created["headers"]["properties"]
    failed = messages["order.created.failed"]["headers"]["properties"]
    assert {"attempt", "not-before", "error-class", "original-offset"} <= set(failed)
    assert created["bindings"]["kafka"]["key"]["description"] == "the event's order_id field"


def test_operations_say_who_sends_and_who_receives(document: dict[str, Any]) -> None:
    operations = document["operations"]
    sends = operations["order-service.sends.orders"]
    assert sends["action"] == "send"
    assert sorted(m["$ref"].rsplit("/", 1)[1] for m in sends["messages"]) == [
        "order.cancelled", "order.created"]
    receives = operations["email.receives.orders"]
    assert receives["action"] == "receive"
    assert receives["bindings"]["kafka"]["groupId"]["enum"] == ["email"]
    assert operations["inventory.sends.orders.inventory.dlq"]["action"] == "send"
    assert operations["inventory.sends.inventory"]["action"] == "send"  # its follow-ups


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.external: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_catalogue_lists_events_versions_fields_publishers_and_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["docs", "html", "--out", str(tmp_path / "site")]) == 0
    assert "index.html" in capsys.readouterr().out
    page = _Page()
    page.feed((tmp_path / "site" / "index.html").read_text())
    text = " ".join(page.text)
    assert {"event-order.created", "event-inventory.rejected", "group-email",
            "topic-orders.email.retry.30s"} <= page.ids
    assert page.external == [] and "script" not in page.tags  # offline, static
    for words in ("A customer placed an order. Version 2 adds an optional coupon code.",
                  "v1", "v2", "coupon_code", "Added in v2.", "unit_price_cents",
                  "order-service", "30s → 5m", "10s → 1m → 10m", "500 events / 2s"):
        assert words in text, words
    facts = json.loads((tmp_path / "site" / "catalogue.json").read_text())
    assert facts["events"]["order.created"]["publishers"] == ["order-service"]


def test_asyncapi_goes_to_stdout_or_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO)
    assert main(["docs", "asyncapi"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["asyncapi"] == "3.0.0"
    assert main(["docs", "asyncapi", "--out", str(tmp_path / "api.json")]) == 0
    assert json.loads((tmp_path / "api.json").read_text())["info"]["title"] == "shop events"


def test_write_site_makes_its_directory(tmp_path: Path) -> None:
    catalogue = build_catalogue(load_topology(REPO / "topology.yaml", check_imports=False))
    assert write_site(catalogue, tmp_path / "a" / "b").name == "index.html"

"""The console links to the event catalogue: its Events page is the catalogue of the
console's own topology (what ``tidings docs html`` writes), or, with ``--catalogue
URL``, the team's published one. No broker: the catalogue needs only topology.yaml."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tidings.cli import main
from tidings.console import Console, Tokens, create_app
from tidings.replay import Cluster
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
VIEWER = {"Authorization": "Bearer viewer-token"}


def _client(monkeypatch: pytest.MonkeyPatch, catalogue_url: str | None = None) -> TestClient:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # never reached
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    console = Console.open(topology, Tokens("op-token", "viewer-token"),
                           cluster=Cluster(topology, timeout=1), catalogue_url=catalogue_url)
    return TestClient(create_app(console), follow_redirects=False)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "href" and value:
                self.hrefs.append(value)
            if name == "id" and value:
                self.ids.add(value)


def test_the_events_page_is_the_catalogue_of_the_consoles_topology(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch)
    assert client.get("/catalogue").status_code == 401
    assert client.get("/catalogue.json").status_code == 401

    response = client.get("/catalogue", headers=VIEWER)
    assert response.status_code == 200
    page = _Links()
    page.feed(response.text)
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    assert {f"event-{name}" for name in topology.events} <= page.ids
    assert {f"group-{name}" for name in topology.consumers} <= page.ids
    assert "/" in page.hrefs, "a link back to the console"
    assert "script" not in page.tags and "form" not in page.tags
    # Its stylesheet is inline; the page may use that and nothing else.
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy

    facts = client.get("/catalogue.json", headers=VIEWER).json()
    assert facts["events"]["order.created"]["publishers"] == ["order-service"]
    assert set(facts["consumers"]) == set(topology.consumers)


def test_every_console_page_links_to_the_events(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch)
    login = client.get("/login")
    csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
    client.post("/login", data={"csrf": csrf, "token": "viewer-token", "who": "Vic"})
    # A page that needs no broker: a refused POST (no CSRF token) in the console's frame.
    refused = client.post("/replay/plan", data={})
    assert refused.status_code == 403
    page = _Links()
    page.feed(refused.text)
    assert "/catalogue" in page.hrefs


def test_a_published_catalogue_is_where_the_events_link_goes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch, "https://docs.example.com/shop/events/")
    assert client.get("/catalogue").status_code == 401
    response = client.get("/catalogue", headers=VIEWER)
    assert response.status_code == 303
    assert response.headers["location"] == "https://docs.example.com/shop/events/"


@pytest.mark.parametrize("value", ["build/catalogue", "file:///tmp/site/index.html",
                                   "https://"])
def test_the_catalogue_option_needs_a_web_address(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "--catalogue", value]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--catalogue {value!r}" in err
    assert "Traceback" not in err


def test_the_console_catalogue_and_the_written_site_agree(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    assert main(["docs", "html", "--out", str(tmp_path)]) == 0
    served = _client(monkeypatch).get("/catalogue.json", headers=VIEWER).json()
    assert served == json.loads((tmp_path / "catalogue.json").read_text())

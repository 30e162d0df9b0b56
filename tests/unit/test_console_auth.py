"""The console's gate, without a broker: tokens and roles, sessions, CSRF, and that no
page answers without a token."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tidings.console import Console, Role, Tokens, create_app
from tidings.console.auth import SESSION_COOKIE, Sessions, csrf_matches, token_hint
from tidings.replay import Cluster
from tidings.topology import load_topology

REPO = Path(__file__).resolve().parents[2]


def test_each_token_maps_to_its_role() -> None:
    tokens = Tokens.from_env({"TIDINGS_CONSOLE_TOKEN": "op", "TIDINGS_CONSOLE_VIEWER_TOKEN": "v"})
    assert tokens.generated == []
    assert tokens.role_of("op") is Role.OPERATOR
    assert tokens.role_of(" v ") is Role.VIEWER
    assert tokens.role_of("") is None and tokens.role_of("opx") is None


def test_tokens_not_set_are_generated_and_must_differ() -> None:
    tokens = Tokens.from_env({})
    assert tokens.generated == [Role.OPERATOR, Role.VIEWER]
    assert len(tokens.operator) >= 24 and tokens.operator != tokens.viewer
    with pytest.raises(ValueError, match="must differ"):
        Tokens.from_env({"TIDINGS_CONSOLE_TOKEN": "same", "TIDINGS_CONSOLE_VIEWER_TOKEN": "same"})


def test_sessions_and_bearer_tokens() -> None:
    sessions = Sessions(Tokens("op", "v"))
    assert sessions.sign_in("wrong", "Eve") is None
    session = sessions.sign_in("v", "  Vic   Viewer ")
    assert session is not None and session.role is Role.VIEWER and session.who == "Vic Viewer"
    assert sessions.get(session.id) == session
    assert session.token_hint == token_hint("v") != "v"
    sessions.sign_out(session.id)
    assert sessions.get(session.id) is None
    bearer = sessions.bearer("Bearer op")
    assert bearer is not None and bearer.is_operator
    assert sessions.bearer("Basic op") is None and sessions.bearer("Bearer nope") is None


def test_a_csrf_token_matches_only_itself() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches("abc", None)
    assert not csrf_matches("", "")


@pytest.fixture()
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    # Nothing here reaches a broker: the refusals come before any Kafka call.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    console = Console.open(topology, Tokens("op-token", "viewer-token"),
                           cluster=Cluster(topology, timeout=1))
    return TestClient(create_app(console), follow_redirects=False)


def test_no_page_answers_without_a_token(client: TestClient) -> None:
    for path in ("/", "/dlq", "/groups/inventory", "/replay", "/topology", "/audit",
                 "/fragments/overview"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "A token is needed" in response.text
    assert client.post("/dlq/redrive/run", data={"plan": "x"}).status_code == 401
    assert client.post("/replay/run", headers={"Authorization": "Bearer wrong"}).status_code \
        == 401


def test_every_page_is_sent_with_safe_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert "script-src" not in response.headers["content-security-policy"]  # 'self' only
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-frame-options"] == "DENY"
    assert client.get("/static/console.js").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def test_sign_in_needs_the_forms_csrf_token_and_a_valid_token(client: TestClient) -> None:
    login = client.get("/login")
    csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
    assert client.post("/login", data={"csrf": "forged", "token": "op-token"}).status_code \
        == 400
    assert client.post("/login", data={"csrf": csrf, "token": "nope"}).status_code == 401
    signed = client.post("/login", data={"csrf": csrf, "token": "op-token", "who": "Ada"})
    assert signed.status_code == 303 and SESSION_COOKIE in signed.cookies


def test_a_post_without_the_sessions_csrf_token_is_refused(client: TestClient) -> None:
    login = client.get("/login")
    csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
    client.post("/login", data={"csrf": csrf, "token": "op-token", "who": "Ada"})
    refused = client.post("/replay/plan", data={"group": "inventory", "topic": "orders",
                                                "from": "-1h"})
    assert refused.status_code == 403
    assert "CSRF token is missing or stale" in refused.text

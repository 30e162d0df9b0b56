"""Standard Webhooks signatures, the circuit breaker, the local receiver and the endpoints
API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from consumers.email.smtp_sink import free_port
from consumers.webhooks.breaker import CircuitBreakers
from consumers.webhooks.receiver import WebhookReceiver
from consumers.webhooks.signing import new_secret, signature, signed_headers, verify

# The example of the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_BODY = b'{"test": 2432232314}'


def test_the_signature_matches_the_specification_example() -> None:
    assert signature(SPEC_SECRET, SPEC_ID, 1614265330, SPEC_BODY) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_accepts_a_genuine_request_and_rejects_a_tampered_one() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", b'{"a":1}', timestamp=1_800_000_000)
    assert verify(secret, headers, b'{"a":1}', now=1_800_000_010) is None
    assert verify(secret, headers, b'{"a":2}', now=1_800_000_010) == "signature does not match"
    assert verify(new_secret(), headers, b'{"a":1}', now=1_800_000_010) is not None
    assert "too far" in str(verify(secret, headers, b'{"a":1}', now=1_800_001_000))
    assert "missing" in str(verify(secret, {}, b""))


def test_the_breaker_opens_after_failures_in_a_row_and_closes_after_a_good_trial() -> None:
    now = [0.0]
    breakers = CircuitBreakers(threshold=3, cooldown=2, max_cooldown=5, clock=lambda: now[0])
    assert breakers.check("ep") is None
    assert not breakers.failed("ep") and not breakers.failed("ep")
    breakers.succeeded("ep")  # a success resets the count
    assert [breakers.failed("ep") for _ in range(3)] == [False, False, True]
    assert breakers.state("ep") == "open" and breakers.check("ep") == 2
    now[0] = 2.0
    assert breakers.check("ep") is None  # the half-open trial
    assert breakers.check("ep") is not None  # others wait while it is in flight
    assert breakers.failed("ep")  # the trial failed: open for twice as long
    now[0] = 5.9
    assert breakers.check("ep") == pytest.approx(0.1)
    now[0] = 6.0
    assert breakers.check("ep") is None
    breakers.succeeded("ep")
    assert breakers.state("ep") == "closed" and breakers.check("other") is None


def test_the_receiver_verifies_dedups_and_goes_down() -> None:
    secret = new_secret()
    port = free_port()
    with WebhookReceiver(port, [secret]) as receiver, httpx.Client() as client:
        body = b'{"type":"x","data":{}}'
        assert client.post(receiver.url, content=body,
                           headers=signed_headers(secret, "msg_a", body)).status_code == 200
        assert client.post(receiver.url, content=body,
                           headers=signed_headers(secret, "msg_a", body)).status_code == 200
        tampered = signed_headers(secret, "msg_b", body)
        assert client.post(receiver.url, content=b'{"type":"y","data":{}}',
                           headers=tampered).status_code == 401
        assert (len(receiver.stats.accepted), receiver.stats.duplicates,
                receiver.stats.rejected) == (1, 1, 1)
        receiver.down()
        with pytest.raises(httpx.ConnectError):
            client.post(receiver.url, content=body, headers=signed_headers(secret, "c", body))
        receiver.up()
        assert client.post(receiver.url, content=body,
                           headers=signed_headers(secret, "msg_c", body)).status_code == 200


def test_the_endpoints_api_registers_lists_shows_and_removes(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from consumers.webhooks import handler as webhooks
    from consumers.webhooks.api import create_app
    from tidings.db import open_database, transaction

    database = open_database(f"sqlite:///{tmp_path / 'webhooks.db'}")
    connection = database.connect()
    try:
        with transaction(connection):
            webhooks.setup(connection, database)
    finally:
        connection.close()
    api = TestClient(create_app(database, ["order.status_changed"]))
    created = api.post("/endpoints", json={"url": "https://example.com/hook",
                                           "events": ["order.status_changed"]})
    assert created.status_code == 201
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert api.get(f"/endpoints/{endpoint['id']}/secret").json() == \
        {"secret": endpoint["secret"]}
    listed = api.get("/endpoints").json()
    assert endpoint["id"] in {e["id"] for e in listed}
    assert all("secret" not in e for e in listed)  # the list does not show secrets
    assert api.get(f"/endpoints/{endpoint['id']}").json()["url"] == "https://example.com/hook"
    # Mistakes are refused with a reason.
    assert api.post("/endpoints", json={"url": "not a url", "events": ["*"]}
                    ).status_code == 422
    assert "does not receive" in api.post("/endpoints", json={
        "url": "https://example.com/", "events": ["order.created"]}).text
    assert api.delete("/endpoints/callbacks").status_code == 409  # built in
    assert api.delete(f"/endpoints/{endpoint['id']}").status_code == 204
    assert api.get(f"/endpoints/{endpoint['id']}").status_code == 404
    assert api.delete(f"/endpoints/{endpoint['id']}").status_code == 404
    assert endpoint["id"] not in {e["id"] for e in api.get("/endpoints").json()}

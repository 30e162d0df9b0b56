"""Webhooks on a real broker, against a real local HTTP receiver that verifies
signatures, answers 500 at random 30% of the time and goes down for 20 s: every event
arrives exactly once in effect and before its retry tiers run out; the DLQ and redrive."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from consumers.email.smtp_sink import free_port
from consumers.webhooks import handler as webhooks
from consumers.webhooks import store
from consumers.webhooks.api import create_app
from consumers.webhooks.receiver import WebhookReceiver
from consumers.webhooks.signing import signed_headers
from schemas import OrderStatusChanged
from tests.integration.runtime_support import running
from tests.integration.scheduling_support import scheduler_running
from tests.integration.shop_support import eventually, read_all
from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import Database, open_database, transaction
from tidings.dlq import execute_redrive, plan_redrive
from tidings.producer.publisher import Publisher
from tidings.topology import Topology, load_topology, sync

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _broker_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
REPO = Path(__file__).resolve().parents[2]

#: Ten short tiers: with 30% of answers failing at random, a delivery fails eleven
#: times in a row with probability 0.3^11 (2e-6); the outage itself uses at most one
#: tier per delivery, since the open circuit postpones deliveries instead.
TIERS = "[500ms, 1s, 2s, 3s, 4s, 5s, 6s, 7s, 8s, 10s]"

TOPOLOGY = """\
name: {p}hooks
defaults: {{partitions: 2, replication_factor: 1}}
topics:
  {p}updates: {{}}
  {p}webhooks: {{}}
events:
  order.status_changed:
    topic: {p}updates
    schema: schemas/order.status_changed.v1.avsc
    key: order_id
    model: schemas.models:OrderStatusChanged
  webhook.requested:
    topic: {p}webhooks
    schema: schemas/webhook.requested.v1.avsc
    key: endpoint_id
    model: schemas.models:WebhookRequested
producers:
  {p}shop: {{publishes: [order.status_changed]}}
  {p}hooks: {{publishes: [webhook.requested]}}
consumers:
  {p}hooks:
    subscribes: [order.status_changed, webhook.requested]
    handler: consumers.webhooks:handle
    retry: {tiers}
    transaction: event
scheduling: {{partitions: 2}}
"""


@dataclass
class Hooks:
    topology: Topology
    prefix: str
    database: Database
    api: TestClient

    @property
    def group(self) -> str:
        return f"{self.prefix}hooks"

    def runtime(self, bootstrap: str) -> ConsumerRuntime:
        setup = resolve_group(self.topology, self.group, self.database)
        return ConsumerRuntime(setup, {"bootstrap.servers": bootstrap}, RuntimeOptions())

    def status_changed(self, n: int, callback: str | None = None) -> OrderStatusChanged:
        return OrderStatusChanged(order_id=f"order-{n}", status="reserved",
                                  callback_url=callback, changed_at=datetime.now(UTC))

    def attempts(self) -> list[store.Attempt]:
        eventually(webhooks.attempt_log(self.database).flushed, 10, "the log written")
        time.sleep(0.2)  # the writer's last transaction
        connection = self.database.connect()
        try:
            return store.attempts(self.database, connection, limit=100_000)
        finally:
            connection.close()


def make_hooks(root: Path, tiers: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> Hooks:
    for name, value in env.items():
        monkeypatch.setenv(f"WEBHOOKS_{name.upper()}", value)
    webhooks.settings.cache_clear()
    webhooks.breakers.cache_clear()
    prefix = f"w{uuid.uuid4().hex[:8]}-"
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "topology.yaml"
    path.write_text(TOPOLOGY.format(p=prefix, tiers=tiers))
    topology = load_topology(path)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    database = open_database(f"sqlite:///{root / 'webhooks.db'}")
    connection = database.connect()
    try:
        with transaction(connection):
            webhooks.setup(connection, database)
    finally:
        connection.close()
    api = TestClient(create_app(database, ["order.status_changed"]))
    return Hooks(topology, prefix, database, api)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    yield
    webhooks.settings.cache_clear()
    webhooks.breakers.cache_clear()


def test_every_event_arrives_once_through_random_500s_and_a_20_second_outage(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = make_hooks(tmp_path, TIERS, monkeypatch, breaker_threshold="3",
                       breaker_cooldown="1", breaker_max_cooldown="4")
    port = free_port()
    receiver_url = f"http://127.0.0.1:{port}/hooks"
    created = hooks.api.post("/endpoints", json={"url": receiver_url,
                                                 "events": ["order.status_changed"]})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert hooks.api.post("/endpoints", json={"url": receiver_url, "events": ["nope"]}
                          ).status_code == 422
    callbacks_secret = hooks.api.get("/endpoints/callbacks/secret").json()["secret"]
    expected: set[str] = set()  # webhook ids: one per (endpoint, event)
    with WebhookReceiver(port, [endpoint["secret"], callbacks_secret], fail_rate=0.3,
                         seed=1515) as receiver, \
            scheduler_running(hooks.topology), \
            running(hooks.runtime(kafka_bootstrap)), \
            Publisher(hooks.topology, f"{hooks.prefix}shop") as publisher:

        def publish(numbers: range) -> None:
            for n in numbers:
                callback = receiver_url if n % 4 == 0 else None
                event_id = str(publisher.publish(hooks.status_changed(n, callback)).event_id)
                expected.add(webhooks.webhook_id(endpoint["id"], event_id))
                if callback:
                    expected.add(webhooks.webhook_id(store.CALLBACKS, event_id))

        publish(range(20))
        eventually(lambda: len(receiver.stats.accepted) >= 10, 60, "the first deliveries")
        receiver.down()
        went_down = time.monotonic()
        publish(range(20, 30))
        time.sleep(max(0.0, 20 - (time.monotonic() - went_down)))  # down for 20 s
        receiver.up()
        publish(range(30, 40))
        eventually(lambda: len(receiver.stats.accepted) == len(expected), 180,
                   f"{len(expected)} distinct deliveries")
        # A tampered request is refused.
        body = b'{"type":"order.status_changed","data":{"order_id":"forged"}}'
        forged = signed_headers(endpoint["secret"], "msg_forged", b'{"original":true}')
        assert httpx.post(receiver_url, content=body, headers=forged).status_code == 401
        time.sleep(1)  # a stray second delivery would still count below
        stats = receiver.stats

    assert set(stats.accepted) == expected and len(expected) == 50  # once in effect
    assert {b["data"]["order_id"] for b in (i.body for i in stats.accepted.values())} == \
        {f"order-{n}" for n in range(40)}
    assert stats.failed > 0 and stats.rejected == 1  # 500s happened; only the forgery
    for topic in (f"{hooks.prefix}updates", f"{hooks.prefix}webhooks"):
        assert read_all(kafka_bootstrap, f"{topic}.{hooks.group}.dlq", timeout=3) == []
    attempts = hooks.attempts()
    # Within the tiers: no delivery needed more attempts than there are tiers + 1.
    assert max(a.attempt for a in attempts) <= 11
    refused = [a for a in attempts if a.outcome == "failed" and a.status is None]
    deferred = [a for a in attempts if a.outcome == "deferred"]
    assert deferred, "the open circuit postponed nothing"
    # Not hammered: while it is down, an endpoint gets the failures that open its circuit
    # (3) and a trial per cooldown (1, 2, 4, 4, 4... s: six in 20 s), not every
    # delivery on every tier.
    for endpoint_id in (endpoint["id"], store.CALLBACKS):
        mine = [a for a in refused if a.endpoint_id == endpoint_id]
        assert 1 <= len(mine) <= 10, [a.error for a in mine]
    log = hooks.api.get(f"/endpoints/{endpoint['id']}/deliveries?limit=1000").json()
    assert {entry["outcome"] for entry in log} >= {"delivered", "failed", "deferred"}


def test_a_delivery_that_keeps_failing_is_dead_lettered_and_redriven(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = make_hooks(tmp_path, "[200ms, 400ms]", monkeypatch, breaker_threshold="1000")
    port = free_port()
    endpoint = hooks.api.post("/endpoints", json={
        "url": f"http://127.0.0.1:{port}/", "events": ["order.status_changed"]}).json()
    with WebhookReceiver(port, ["whsec_" + "A" * 32]) as receiver, \
            running(hooks.runtime(kafka_bootstrap)), \
            Publisher(hooks.topology, f"{hooks.prefix}shop") as publisher:
        for n in range(3):
            publisher.publish(hooks.status_changed(n))
        dlq = f"{hooks.prefix}webhooks.{hooks.group}.dlq"
        letters = eventually(lambda: read_all(kafka_bootstrap, dlq, expect=3, timeout=2)
                             if receiver.stats.rejected >= 9 else [], 60, "three dead letters")
        assert len(letters) == 3
        assert {dict(m.headers() or [])["attempt"] for m in letters} == {b"3"}
        receiver.secrets = [endpoint["secret"]]  # the subscriber fixed its configuration
        plan = plan_redrive(hooks.topology, hooks.group)
        assert execute_redrive(plan, hooks.topology, show_progress=False).sent == 3
        eventually(lambda: len(receiver.stats.accepted) == 3, 60, "the redriven deliveries")
    outcomes = [a.outcome for a in hooks.attempts()]
    assert outcomes.count("failed") == 9 and outcomes.count("delivered") == 3

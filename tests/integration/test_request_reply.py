"""Request-reply on a real broker: 1,000 concurrent requests from one process matched,
a timeout that says so, a late reply dropped and counted, a reply to a non-request."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas import StockReported, StockRequested
from tests.integration.runtime_support import running
from tests.integration.shop_support import eventually, read_all
from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.producer.publisher import Publisher
from tidings.requests import RequestTimeout
from tidings.topology import Topology, load_topology, sync

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _broker_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
REPO = Path(__file__).resolve().parents[2]

TOPOLOGY = """\
name: {p}rr
defaults: {{partitions: 3, replication_factor: 1}}
topics:
  {p}stock: {{}}
events:
  stock.requested:
    topic: {p}stock
    schema: schemas/stock.requested.v1.avsc
    key: sku
    model: schemas.models:StockRequested
  stock.reported:
    topic: {p}stock
    schema: schemas/stock.reported.v1.avsc
    key: sku
    model: schemas.models:StockReported
producers:
  {p}asker: {{publishes: [stock.requested], replies: {{partitions: 4}}}}
  {p}answerer: {{publishes: [stock.reported]}}
consumers:
  {p}answerer:
    subscribes: [stock.requested]
    handler: {module}:handle
    concurrency: 4
    retry: []
"""

HANDLER = '''
import time
from datetime import UTC, datetime
from schemas.models import StockReported


def handle(event, ctx):
    kind, number = event.sku.rsplit("-", 1)
    if kind == "silent":
        return
    if kind == "slow":
        time.sleep(2)
    ctx.reply(StockReported(sku=event.sku, on_hand=int(number) * 3,
                            reported_at=datetime.now(UTC)))
'''


@dataclass
class Conversation:
    topology: Topology
    prefix: str
    runtime: ConsumerRuntime

    @property
    def asker(self) -> str:
        return f"{self.prefix}asker"


@pytest.fixture
def conversation(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Conversation]:
    prefix = f"r{uuid.uuid4().hex[:8]}-"
    shutil.copytree(REPO / "schemas", tmp_path / "schemas",
                    ignore=shutil.ignore_patterns("__pycache__"))
    module = f"answer_{prefix.strip('-')}"
    (tmp_path / f"{module}.py").write_text(HANDLER)
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.format(p=prefix, module=module))
    topology = load_topology(path)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    setup = resolve_group(topology, f"{prefix}answerer",
                          open_database(f"sqlite:///{tmp_path / 'answerer.db'}"))
    runtime = ConsumerRuntime(setup, {"bootstrap.servers": kafka_bootstrap}, RuntimeOptions())
    with running(runtime):
        yield Conversation(topology, prefix, runtime)


def test_a_thousand_concurrent_requests_each_get_their_own_reply(
        conversation: Conversation) -> None:
    with Publisher(conversation.topology, conversation.asker) as publisher:
        # Sync first: it also proves the answering group is up before the burst.
        first = publisher.request_sync(StockRequested(sku="sku-7"), expect=StockReported,
                                       timeout=60)
        assert (first.sku, first.on_hand) == ("sku-7", 21)

        async def burst() -> list[StockReported]:
            return await asyncio.gather(*(
                publisher.request(StockRequested(sku=f"sku-{n}"), expect=StockReported,
                                  timeout=90)
                for n in range(1000)))

        replies = asyncio.run(burst())
        assert [(r.sku, r.on_hand) for r in replies] == [(f"sku-{n}", n * 3)
                                                         for n in range(1000)]
        requester = publisher.requester()
        assert requester.waiting == 0
        metrics = requester.metrics
        assert metrics.value("tidings_requests_replied_total",
                             event_type="stock.reported") == 1001
        assert metrics.value("tidings_replies_late_total") == 0


def test_a_timeout_raises_and_a_late_reply_is_dropped_and_counted(
        conversation: Conversation) -> None:
    with Publisher(conversation.topology, conversation.asker) as publisher:
        publisher.request_sync(StockRequested(sku="warm-1"), expect=StockReported, timeout=60)
        with pytest.raises(RequestTimeout, match=r"no reply to stock.requested within 1s"):
            publisher.request_sync(StockRequested(sku="silent-1"), expect=StockReported,
                                   timeout=1)

        async def too_impatient() -> None:
            await publisher.request(StockRequested(sku="slow-1"), expect=StockReported,
                                    timeout=0.5)

        with pytest.raises(RequestTimeout):
            asyncio.run(too_impatient())
        metrics = publisher.requester().metrics
        eventually(lambda: metrics.value("tidings_replies_late_total") == 1, 30,
                   "the slow reply, dropped as late")
        assert metrics.value("tidings_requests_timed_out_total",
                             event_type="stock.requested") == 2
        # The requester still matches what comes after.
        assert publisher.request_sync(StockRequested(sku="after-2"), expect=StockReported,
                                      timeout=30).on_hand == 6


def test_replying_to_an_event_that_is_not_a_request_dead_letters_it(
        conversation: Conversation, kafka_bootstrap: str) -> None:
    with Publisher(conversation.topology, conversation.asker) as publisher:
        publisher.publish(StockRequested(sku="plain-1"))
    dlq = f"{conversation.prefix}stock.{conversation.prefix}answerer.dlq"
    letters = eventually(lambda: read_all(kafka_bootstrap, dlq, expect=1, timeout=2), 30,
                         "the dead letter")
    headers = dict(letters[0].headers() or [])
    assert headers["error-class"] == b"tidings.consumer.context.NotARequest"

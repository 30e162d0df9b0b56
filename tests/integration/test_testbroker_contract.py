"""TestBroker and a real broker agree: the same scenarios, the same outcomes.

Each scenario (success, a duplicate, a retry that then succeeds, retries exhausted
into the DLQ, a non-retryable failure, poison, an event the model rejects, a
follow-up event through the outbox) is published once to TestBroker and once to the
session's real Kafka, where the production ConsumerRuntime runs the group. Outcomes
per delivery, the retry and DLQ messages with their headers, the follow-up events and
the handler's effects must be identical; only times, partitions and offsets may
differ. If TestBroker ever drifts from production, this fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from contract_support import Contract, make_contract, observed, publications

from tidings.db import open_database
from tidings.producer.publisher import Publisher
from tidings.producer.reliable import ReliableProducer
from tidings.testing.broker import TestBroker
from tidings.testing.live import LiveGroup
from tidings.testing.outcomes import GroupRun

pytestmark = pytest.mark.integration


def effects_of(url: str) -> list[tuple[Any, ...]]:
    connection = open_database(url).connect()
    try:
        return [tuple(r) for r in connection.execute("SELECT * FROM effects").fetchall()]
    finally:
        connection.close()


def in_memory(contract: Contract, root: Path) -> tuple[GroupRun, list[tuple[Any, ...]]]:
    with TestBroker(contract.topology, directory=root) as broker:
        for item in publications(contract):
            if item.event is not None:
                broker.publish(item.event, event_id=item.event_id)
            else:
                assert item.raw is not None
                broker.publish_raw(contract.orders, item.raw, key=b"k",
                                   headers=dict(item.headers))
        run = broker.run(contract.group, through_retries=True)
        return run, broker.query(contract.group, "SELECT * FROM effects")


def on_kafka(contract: Contract, root: Path,
             bootstrap: str) -> tuple[GroupRun, list[tuple[Any, ...]]]:
    from tidings.topology import sync

    view = sync.connect(contract.topology)
    sync.apply(view, sync.plan(view))
    config = {"bootstrap.servers": bootstrap}
    with Publisher(contract.topology, "order-service", producer_config=config) as publisher:
        producer = ReliableProducer(config)
        try:
            for item in publications(contract):
                # One at a time, in order, as TestBroker got them.
                if item.event is not None:
                    publisher.send_prepared(publisher.prepare(
                        item.event, event_id=item.event_id)).result(timeout=30)
                else:
                    assert item.raw is not None
                    producer.send(contract.orders, item.raw, key=b"k", headers=[
                        (k, v.encode()) for k, v in item.headers]).result(timeout=30)
        finally:
            producer.close()
    url = f"sqlite:///{root / 'live.db'}"
    run = LiveGroup(contract.topology, contract.group, config, url).run(timeout=90)
    return run, effects_of(url)


@pytest.mark.parametrize("kind", ["per-event handler", "batch handler"])
def test_testbroker_and_a_real_broker_give_identical_outcomes(
    tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    contract = make_contract(tmp_path, batch=kind == "batch handler")
    memory_run, memory_effects = in_memory(contract, tmp_path / "memory")
    live_run, live_effects = on_kafka(contract, tmp_path, kafka_bootstrap)
    memory, live = observed(memory_run, memory_effects), observed(live_run, live_effects)
    for aspect in memory:
        assert memory[aspect] == live[aspect], aspect

    # And the shared outcome is the one each scenario means.
    final = memory_run.final()
    assert memory_run.outcomes_of("id-duplicate") == ["processed", "duplicate"]
    assert memory_run.outcomes_of("id-retry-then-success") == ["retried", "retried", "processed"]
    assert memory_run.outcomes_of("id-retry-exhausted") == ["retried", "retried",
                                                            "dead-lettered"]
    assert final["id-non-retryable"] == final["id-poison"] == final["id-invalid"] \
        == "dead-lettered"
    assert final["id-success"] == final["id-follow-up"] == "processed"
    letters = {s.event_id: s for s in memory_run.dead_letters}
    exhausted = letters["id-retry-exhausted"].headers
    assert (exhausted["attempt"], exhausted["error-class"], exhausted["error-message"],
            exhausted["original-topic"]) == ("3", "RuntimeError", "always broken",
                                             contract.orders)
    assert "not-before" not in exhausted
    assert letters["id-poison"].error_class == "tidings.consumer.processing.UndecodableEvent"
    assert letters["id-invalid"].error_class == "tidings.consumer.processing.InvalidEvent"
    assert [r.headers["not-before"] != "" for r in memory_run.retries] == [True] * 4
    (follow_up,) = memory_run.follow_ups
    assert follow_up.event_type == "inventory.reserved"
    assert follow_up.event.order_id == "order-follow-up"
    print(f"\n{kind}: {memory_run.counts} on both sides")

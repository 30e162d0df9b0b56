"""The pytest plugin's integration fixtures, used as a team using Tidings would use them:
the shop's topology applied to the session broker, a Publisher, and run_group."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from schemas import InventoryReserved, LineItem, OrderCreated
from tidings import Publisher, Topology
from tidings.testing.plugin import GroupRunner

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def an_order(order_id: str) -> OrderCreated:
    return OrderCreated(
        order_id=order_id, customer_id="cus-1", customer_email="ada@example.com",
        currency="EUR", items=[LineItem(sku="MUG", quantity=2, unit_price_cents=1000)],
        total_cents=2000, created_at=WHEN)


def test_the_topology_is_applied_under_a_session_prefix(
        tidings_topology: Topology, tidings_declared_topology: Topology) -> None:
    orders = tidings_topology.events["order.created"].topic
    assert orders.endswith("-orders") and orders != "orders"
    prefix = orders.removesuffix("orders")
    assert set(tidings_topology.topics) == {f"{prefix}{t}"
                                            for t in tidings_declared_topology.topics}
    assert "orders" in tidings_declared_topology.topics
    # Scheduling topics derive from the (prefixed) topology name.
    assert tidings_topology.name == f"{prefix}{tidings_declared_topology.name}"


def test_a_test_that_leaves_events_behind(
    tidings_publisher: Callable[[str], Publisher]
) -> None:
    publisher = tidings_publisher("order-service")
    publisher.publish_many([an_order("left-1"), an_order("left-2")])


def test_run_group_processes_and_reports_only_this_tests_events(
    tidings_publisher: Callable[[str], Publisher], run_group: GroupRunner,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVENTORY_INITIAL_STOCK", "MUG=5")
    delivery = tidings_publisher("order-service").publish(an_order("mine"))

    run = run_group("inventory")

    assert run.outcomes_of(str(delivery.event_id)) == ["processed"]
    assert run.counts == {"processed": 1}  # not the two the previous test left
    (reserved,) = run.follow_ups
    assert isinstance(reserved.event, InventoryReserved)
    assert reserved.event.order_id == "mine"
    assert run_group.query("inventory", "SELECT sku, on_hand FROM inventory_stock") == [
        ("MUG", 3)]
    assert run_group("inventory").outcomes == []  # idle: nothing more to do

"""``tidings replay`` against a real broker: one group only, bounded, throttled, resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from replay_support import make_services
from runtime_support import make_group, running
from shop_support import an_order, eventually, headers_of, read_all

from schemas import LineItem
from tidings.cli import main
from tidings.producer.publisher import Publisher
from tidings.replay import REPLAY_ID, Cluster
from tidings.replay.throttle import max_sent

pytestmark = pytest.mark.integration

ANALYTICS_TOTALS = ("SELECT COALESCE(SUM(orders), 0), COALESCE(SUM(revenue_cents), 0) "
                    "FROM analytics_orders_per_minute")
STOCK = "SELECT sku, on_hand FROM inventory_stock ORDER BY sku"


@pytest.fixture(autouse=True)
def _bootstrap(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("INVENTORY_INITIAL_STOCK", "SKU-1=1000,SKU-2=1000")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def test_reprocessing_the_last_hour_recomputes_analytics_and_leaves_inventory_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    services = make_services(tmp_path)
    orders = [an_order(items=[LineItem(sku="SKU-1", quantity=1, unit_price_cents=100 + i)],
                       total_cents=100 + i) for i in range(40)]
    with running(services.runtime("inventory")), running(services.runtime("analytics")):
        with Publisher(services.topology, "order-service") as publisher:
            publisher.publish_many(orders)
        high = services.high()
        eventually(lambda: services.committed("inventory") == high
                 and services.committed("analytics") == high, 30, "both groups to catch up")
        totals = services.query("analytics", ANALYTICS_TOTALS)
        assert totals == [(40, sum(o.total_cents for o in orders))]
        stock = services.query("inventory", STOCK)
        assert stock == [("SKU-1", 960), ("SKU-2", 1000)]
        inventory_offsets = services.committed("inventory")

        # The operator found a bug in analytics, wiped its totals and backfills the hour.
        services.execute("analytics", "DELETE FROM analytics_orders_per_minute")
        args = ["replay", "-f", str(services.topology.path), "--group",
                services.group("analytics"), "--topic", services.orders, "--from", "-1h",
                "--reprocess"]
        assert main(args) == 0  # dry run
        plan = capsys.readouterr().out
        assert "mode:    copy" in plan and "is running" in plan
        assert f"affects: {services.group('analytics')} only; not " \
               f"{services.group('inventory')}" in plan
        assert "runs again" in plan and "40  (40 to copy)" in plan
        assert "Dry run: nothing changed" in plan
        assert services.high(f"{services.orders}.{services.group('analytics')}.replay") == \
            {0: 0, 1: 0, 2: 0}

        assert main([*args, "--execute", "--no-progress"]) == 0
        assert "Copied 40 event(s)" in capsys.readouterr().out
        eventually(lambda: services.query("analytics", ANALYTICS_TOTALS) == totals, 30,
                 "analytics to recompute the hour")
        time.sleep(1.0)  # a stray extra delivery would show up now
        assert services.query("analytics", ANALYTICS_TOTALS) == totals
        assert services.committed("inventory") == inventory_offsets
        assert services.query("inventory", STOCK) == stock

    # Both stopped: an open-ended replay to an idle group rewinds it, and undo restores.
    analytics_before = services.committed("analytics")
    rewind = ["replay", "-f", str(services.topology.path), "--group",
              services.group("analytics"), "--topic", services.orders, "--from", "-1h"]
    assert main([*rewind, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "mode:    rewind" in out and "Rewound group" in out
    assert services.committed("analytics") == {0: 0, 1: 0, 2: 0}
    assert services.committed("inventory") == inventory_offsets
    assert main(["replay", "-f", str(services.topology.path), "--undo", "--group",
                 services.group("analytics"), "--yes"]) == 0
    assert "Restored the offsets" in capsys.readouterr().out
    assert services.committed("analytics") == analytics_before
    assert services.committed("inventory") == inventory_offsets
    assert main(["replay", "-f", str(services.topology.path), "--undo", "--group",
                 services.group("analytics")]) == 1
    assert "no rewind of group" in capsys.readouterr().err


def test_a_bounded_throttled_copy_resumed_after_a_kill_delivers_the_window_once(
    tmp_path: Path, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    group = make_group(tmp_path)
    replay_topic = f"{group.topic}.{group.name}.replay"
    with running(group.runtime(commit_interval=0.2)):
        with Publisher(group.topology, "order-service") as publisher:
            publisher.publish_many([an_order() for _ in range(15)])
            time.sleep(0.3)
            t1 = datetime.now(UTC)
            window = publisher.publish_many([an_order() for _ in range(60)])
            t2 = datetime.now(UTC)
            time.sleep(0.3)
            publisher.publish_many([an_order() for _ in range(15)])
        eventually(lambda: len(group.effects()) == 90, 30, "the group to apply all 90")
        in_window = [m for m in read_all(kafka_bootstrap, group.topic)
                     if iso(t1) <= iso(datetime.fromtimestamp(m.timestamp()[1] / 1000, UTC))
                     < iso(t2)]
        assert len(in_window) == 60, "the window holds exactly the middle batch"
        window_ids = {d.event_id for d in window}

        args = ["replay", "-f", str(group.topology.path), "--group", group.name, "--topic",
                group.topic, "--from", iso(t1), "--to", iso(t2), "--reprocess", "--yes"]
        # Slow enough (60 events at 5/s) that the kill lands mid-copy even on a busy machine.
        child = subprocess.Popen([sys.executable, "-m", "tidings", *args, "--rate", "5"],
                                 env={**os.environ}, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cluster = Cluster(group.topology)
        try:
            eventually(lambda: sum(cluster.watermarks(
                replay_topic, [0, 1, 2])[p][1] for p in range(3)) >= 10, 30, "copies")
        finally:
            child.send_signal(signal.SIGKILL)  # no chance to clean up: the worst case
            child.wait(timeout=10)
        first_run = sum(high for _, high in Cluster(group.topology).watermarks(
            replay_topic, [0, 1, 2]).values())
        assert 10 <= first_run < 60

        rate = 25.0
        began = time.monotonic()
        assert main([*args, "--rate", str(rate), "--no-progress"]) == 0
        elapsed = time.monotonic() - began
        out = capsys.readouterr().out
        assert "resume:" in out and f"Copied {60 - first_run} event(s)" in out
        assert 60 - first_run <= max_sent(rate, elapsed), "no faster than --rate on average"

        copies = read_all(kafka_bootstrap, replay_topic)
        ids = [headers_of(m)["event-id"] for m in copies]
        assert len(ids) == 60 and set(ids) == window_ids, "each window event copied once"
        assert len({headers_of(m)[REPLAY_ID] for m in copies}) == 1
        eventually(lambda: len(group.effects()) == 150, 30, "the group to reprocess the 60")
        time.sleep(1.0)
        effects = group.effects()
        assert len(effects) == 150
        assert sorted(e[0] for e in effects[90:]) == sorted(window_ids)


def test_bad_input_is_one_line_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = make_group(tmp_path)
    base = ["replay", "-f", str(group.topology.path)]
    with Publisher(group.topology, "order-service") as publisher:
        publisher.publish_many([an_order() for _ in range(5)])
    replay_topic = f"{group.topic}.{group.name}.replay"
    cluster = Cluster(group.topology)

    def error(*args: str) -> str:
        assert main([*base, *args, "--yes"]) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err
        return err

    assert "declared: " + group.name in error("--group", "nope", "--topic", group.topic,
                                              "--from", "-1h")
    assert "declared: " + group.topic in error("--group", group.name, "--topic", "nope",
                                               "--from", "-1h")
    assert "is after --to" in error("--group", group.name, "--topic", group.topic,
                                    "--from", "-1h", "--to", "-2h")
    with running(group.runtime()):
        eventually(lambda: cluster.group_status(group.name).members, 30, "the group to join")
        assert "active member" in error("--group", group.name, "--topic", group.topic,
                                        "--from", "-1h", "--mode", "rewind")
        # A range with no events: an empty plan, exit 0.
        assert main([*base, "--group", group.name, "--topic", group.topic, "--from",
                     "2099-01-01T00:00Z", "--yes"]) == 0
        assert "Nothing to replay" in capsys.readouterr().out
    assert sum(h for _, h in cluster.watermarks(replay_topic, [0, 1, 2]).values()) == 0

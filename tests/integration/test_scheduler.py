"""The scheduler on a real broker: delayed events arrive once, with their own event-id,
never early; kill -9 and several instances change nothing; clock jumps; cancellation."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.email.smtp_sink import free_port
from tests.integration.scheduling_support import (
    CommittedReader,
    kafka_config,
    make_sched_shop,
    scheduler_running,
)
from tests.integration.shop_support import an_order, eventually
from tidings.cli import main
from tidings.producer.publisher import Publisher
from tidings.producer.scheduled import ScheduledDelivery
from tidings.scheduling.dispatcher import Scheduler
from tidings.scheduling.listing import waiting_events
from tidings.testing.clock import ManualClock

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _broker_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)


def _metric(port: int, name: str) -> float:
    import urllib.request

    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def _start(shop_path: Path, root: Path, name: str, port: int) -> subprocess.Popen[bytes]:
    log = (root / f"scheduler-{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tidings", "run", "scheduler", "-f", str(shop_path),
         "--instance-id", name, "--metrics-port", str(port), "--session-timeout", "6"],
        cwd=root, env={**os.environ, "TIDINGS_LOG_LEVEL": "INFO"}, stdout=log,
        stderr=subprocess.STDOUT)


def test_delayed_events_arrive_once_never_early_through_kill_9_and_two_instances(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    shop = make_sched_shop(tmp_path)
    rng = random.Random(15)
    ports = {"a": free_port(), "b": free_port()}
    procs = {name: _start(shop.path, tmp_path, name, port) for name, port in ports.items()}
    reader = CommittedReader(shop.orders)
    try:
        expected: dict[str, int] = {}
        cancelled: set[str] = set()
        with Publisher(shop.topology, shop.service) as publisher:
            now = datetime.now(UTC)
            for index in range(240):
                if index % 2:
                    delivery = publisher.publish(
                        an_order(), delay=timedelta(seconds=rng.uniform(0, 9)))
                else:
                    delivery = publisher.publish(
                        an_order(), deliver_at=now + timedelta(seconds=rng.uniform(2, 12)))
                assert isinstance(delivery, ScheduledDelivery)
                assert delivery.schedule_id == delivery.event_id  # by default
                expected[str(delivery.event_id)] = int(delivery.deliver_at.timestamp() * 1000)
            for index in range(20):
                delivery = publisher.publish(an_order(), delay=timedelta(seconds=6),
                                             schedule_id=f"{shop.prefix}remind-{index}")
                publisher.cancel(f"{shop.prefix}remind-{index}")
                cancelled.add(str(delivery.event_id))
            # Kill -9 one instance once it has delivered something, with events still due
            # (however long publishing took on a loaded machine: the last ones are due
            # seconds after the kill).
            eventually(lambda: reader.poll() >= 40, 60, "the first deliveries")
            for _ in range(20):
                delivery = publisher.publish(
                    an_order(), delay=timedelta(seconds=rng.uniform(4, 8)))
                expected[str(delivery.event_id)] = int(delivery.deliver_at.timestamp() * 1000)
        procs["a"].send_signal(signal.SIGKILL)
        procs["a"].wait()
        killed_after = reader.poll()
        procs["a"] = _start(shop.path, tmp_path, "a", ports["a"])  # same instance id
        eventually(lambda: reader.poll() >= len(expected), 120, "every delayed event")
        # Everything due has been delivered; give a stray second copy the time to show.
        latest = max(expected.values())
        eventually(lambda: time.time() * 1000 > latest + 3000, 30, "the last due time")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            reader.poll()
        ids = reader.event_ids()
        assert killed_after < len(expected), "the kill landed after everything was delivered"
        assert len(ids) == len(set(ids)) == len(expected), "an event was delivered twice"
        assert set(ids) == set(expected)
        assert not cancelled & set(ids)
        for index, message in enumerate(reader.messages):
            event_id = reader.header(index, "event-id")
            created = message.timestamp()[1]
            assert created >= expected[event_id], f"{event_id} arrived early"
            assert int(reader.header(index, "deliver-at")) == expected[event_id]
        dispatched = sum(_metric(p, "tidings_scheduler_dispatched_total")
                         for p in ports.values())
        assert dispatched >= 1 and _metric(ports["b"], "tidings_scheduler_dispatched_total")
    finally:
        reader.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_clock_jumps_forward_deliver_once_and_back_deliver_nothing_early(
        kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = make_sched_shop(tmp_path)
    clock = ManualClock(running=True)
    reader = CommittedReader(shop.orders)
    try:
        with Publisher(shop.topology, shop.service) as publisher, \
                scheduler_running(shop.topology, clock) as scheduler:
            start = clock.now()
            waits = [timedelta(seconds=90), timedelta(hours=2), timedelta(hours=25),
                     timedelta(days=29, hours=20)]  # near max_delay: 30d
            far = {publisher.publish(an_order(), deliver_at=start + wait).event_id
                   for wait in waits for _ in range(10)}
            metrics = scheduler.metrics
            eventually(lambda: metrics.total("tidings_scheduler_received_total") == 40, 60,
                       "the scheduler reads them all")
            eventually(lambda: metrics.total("tidings_scheduler_hops_total") >= 40, 30,
                       "each moves to its waiting tier")
            assert metrics.value("tidings_scheduler_hops_total", tier="1d") >= 20
            assert reader.poll() == 0  # nothing is due yet
            waiting = waiting_events(shop.topology, kafka_config())
            assert {w.event_id for w in waiting} == far  # each in exactly one place
            assert [w.deliver_at for w in waiting] == sorted(w.deliver_at for w in waiting)
            assert main(["schedule", "list", "-f", str(shop.path)]) == 0
            assert "40 scheduled event(s) waiting" in capsys.readouterr().out

            # A month passes at once (short of 30 days: the publisher below, on the wall
            # clock, refuses to schedule past max_delay).
            clock.advance(29 * 86400 + 21 * 3600)
            eventually(lambda: reader.poll() == 40, 60, "everything due is delivered")
            assert set(reader.event_ids()) == far

            # The clock goes back an hour: what is due in a minute must not fire now.
            moved = clock.now()
            soon = {publisher.publish(an_order(), deliver_at=moved + timedelta(seconds=60))
                    .event_id for _ in range(10)}
            eventually(lambda: metrics.total("tidings_scheduler_received_total") == 50, 30,
                       "the next ten are read")
            clock.set(moved - timedelta(hours=1))
            probe = publisher.publish(an_order(), deliver_at=moved - timedelta(hours=2))
            eventually(lambda: probe.event_id in set(reader.event_ids())
                       if reader.poll() else False, 30, "an event due now, after the jump")
            assert not soon & set(reader.event_ids()), "fired early after the clock went back"

            clock.set(moved + timedelta(seconds=61))
            eventually(lambda: reader.poll() == 51, 60, "the ten, at their time")
            ids = reader.event_ids()
            assert len(ids) == len(set(ids)) == 51 and soon <= set(ids)
            lateness = metrics.value("tidings_scheduler_lateness_seconds_count",
                                     event_type="order.created")
            assert lateness == 51
    finally:
        reader.close()


ORDER_DATA = ("{{order_id: \"{name} {{tick}}\", customer_id: scheduler, "
              "customer_email: ops@shop.example, currency: EUR, "
              "items: [{{sku: REPORT, quantity: 1, unit_price_cents: 0}}], total_cents: 0, "
              "created_at: \"{{tick}}\"}}")
RECURRING = "schedules:\n" + "".join(
    f"  {name}:\n    {when}\n    event: order.created\n    catch_up: {catch_up}\n"
    f"    data: {ORDER_DATA.format(name=name)}\n"
    for name, when, catch_up in (
        ("half-hourly", 'cron: "*/30 * * * *"\n    timezone: Europe/Berlin', "all"),
        ("nightly", 'cron: "30 2 * * *"\n    timezone: Europe/Berlin', "all"),
        ("latest", "every: 5m", "latest"),
        ("none", "every: 5m", "none"),
    ))


def _ticks(reader: CommittedReader) -> dict[str, list[str]]:
    """Schedule -> the times of its ticks (HH:MM UTC), in time order (they spread over
    partitions by key)."""
    found: dict[str, list[str]] = {}
    for index in range(len(reader.messages)):
        found.setdefault(reader.header(index, "schedule"), []).append(
            reader.header(index, "tick"))
    return {name: [tick[11:16] for tick in sorted(ticks)] for name, ticks in found.items()}


def test_recurring_ticks_once_across_dst_instances_outages_and_clock_jumps(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    from tidings.scheduling.ticks import tick_event_id

    shop = make_sched_shop(tmp_path, RECURRING)
    # The night Berlin's clocks go back: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
    clock = ManualClock(datetime(2026, 10, 24, 23, 5, tzinfo=UTC))
    names = set(shop.topology.schedules)
    reader = CommittedReader(shop.orders)

    def handled(schedulers: list[Scheduler]) -> bool:
        """Some instance runs the schedules and has nothing left due at the clock's time."""
        now = clock.ms()
        return any(s._owns_state and s._state_loaded and names <= set(s.state)
                   and all((s._recurrences[n].next_after(s.state[n]) or now + 1) > now
                           for n in names) for s in schedulers)

    def step_to(schedulers: list[Scheduler], moment: datetime) -> None:
        clock.set(moment)
        eventually(lambda: handled(schedulers), 30, f"the ticks up to {moment:%H:%M}")

    try:
        with scheduler_running(shop.topology, clock, "one") as first:
            with scheduler_running(shop.topology, clock, "two") as second:
                both = [first, second]
                eventually(lambda: handled(both), 30, "the schedules start")
                moment = clock.now()
                for _ in range(12):  # to 01:05 UTC, ten minutes at a time
                    moment += timedelta(minutes=10)
                    step_to(both, moment)
            # "two" stopped: "one" carries on alone (it may have held the state already).
            for _ in range(12):  # to 03:05 UTC
                moment += timedelta(minutes=10)
                step_to([first], moment)
        # Everything is down for an hour; a new instance catches up per schedule.
        clock.set(moment + timedelta(hours=1, minutes=2))  # 04:07 UTC: 04:05 is 2 min late
        with scheduler_running(shop.topology, clock, "three") as third:
            eventually(lambda: handled([third]), 30, "the catch-up")
            # Back an hour: nothing may fire, not even what fired already.
            clock.set(moment)
            time.sleep(1)
            clock.set(moment + timedelta(minutes=50))
            time.sleep(1)
            assert third.state["latest"] == int((moment + timedelta(hours=1)).timestamp() * 1000)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            reader.poll()
        ticks = _ticks(reader)
        # Every real half hour, both 02:00 and both 02:30 of the repeated hour included.
        assert ticks["half-hourly"] == ["23:30", "00:00", "00:30", "01:00", "01:30", "02:00",
                                        "02:30", "03:00", "03:30", "04:00"]
        assert ticks["nightly"] == ["00:30"]  # 02:30 local, once, though it occurred twice
        # Ten-minute steps: latest emits the last tick of each step, then one for the
        # hour-long outage; none emits the on-time one, and nothing for the outage.
        steps = [f"{(datetime(2026, 10, 24, 23, 5) + timedelta(minutes=10 * n)):%H:%M}"
                 for n in range(1, 25)]
        assert ticks["latest"] == [*steps, "04:05"]
        assert ticks["none"] == steps
        ids = reader.event_ids()
        assert len(ids) == len(set(ids)), "a tick was emitted twice"
        first_tick = int(datetime(2026, 10, 24, 23, 30, tzinfo=UTC).timestamp() * 1000)
        assert tick_event_id(shop.topology.name, "half-hourly", first_tick) in ids
    finally:
        reader.close()


def test_the_cli_schedules_lists_and_cancels_and_the_scheduler_drops_the_cancelled(
        kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    shop = make_sched_shop(tmp_path)
    data = json.dumps(an_order().model_dump(mode="json"))
    for name in ("kept", "dropped"):
        assert main(["publish", "order.created", "--data", data, "--delay", "1h",
                     "--schedule-id", f"{shop.prefix}{name}", "-f", str(shop.path)]) == 0
        assert f"as {shop.prefix}{name}" in capsys.readouterr().out
    assert main(["schedule", "cancel", f"{shop.prefix}dropped", "-f", str(shop.path)]) == 0
    assert f"cancelled {shop.prefix}dropped" in capsys.readouterr().out
    assert main(["schedule", "list", "-f", str(shop.path)]) == 0
    listed = capsys.readouterr().out
    assert "1 scheduled event(s) waiting, 1 cancelled (dropped when due)" in listed
    assert f"{shop.prefix}dropped" in listed and "(cancelled)" in listed

    clock = ManualClock(running=True)
    reader = CommittedReader(shop.orders)
    try:
        with scheduler_running(shop.topology, clock) as scheduler:
            eventually(lambda: scheduler.metrics.total("tidings_scheduler_hops_total") >= 1,
                       30, "the kept one waits in a tier")
            clock.advance(2 * 3600)
            eventually(lambda: reader.poll() == 1, 30, "the kept one, at its time")
            eventually(lambda: scheduler.metrics.total("tidings_scheduler_cancelled_total")
                       == 1, 30, "the cancelled one dropped")
        assert reader.header(0, "schedule-id") == f"{shop.prefix}kept"
    finally:
        reader.close()

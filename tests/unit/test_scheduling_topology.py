"""topology.yaml's scheduling:, schedules: and replies:, and what a delayed publish puts
on the wire."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tidings import headers as h
from tidings.producer.prepare import EventPreparer
from tidings.producer.scheduled import ScheduleRefused, due_time, schedule
from tidings.scheduling.envelope import delivery_headers, hop_headers, read_entry
from tidings.scheduling.ticks import tick_event, tick_event_id
from tidings.topology import Topology, TopologyInvalid, load_topology
from tidings.topology.scheduling import tier_for

REPO = Path(__file__).resolve().parents[2]

BASE = """\
name: sched-test
defaults: {partitions: 3, replication_factor: 1}
topics:
  orders: {}
events:
  order.created:
    topic: orders
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas.models:OrderCreated
  order.cancelled:
    topic: orders
    schema: schemas/order.cancelled.v1.avsc
    key: order_id
producers:
  shop:
    publishes: [order.created]
    replies: {partitions: 4}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "schemas", tmp_path / "schemas",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def load(workdir: Path, extra: str, **kwargs: object) -> Topology:
    path = workdir / "topology.yaml"
    path.write_text(BASE + textwrap.dedent(extra))
    return load_topology(path, **kwargs)  # type: ignore[arg-type]


def problems(workdir: Path, extra: str) -> list[tuple[int | None, str]]:
    with pytest.raises(TopologyInvalid) as caught:
        load(workdir, extra)
    return [(p.line, p.message) for p in caught.value.problems]


def test_scheduling_derives_its_topics(workdir: Path) -> None:
    topology = load(workdir, "scheduling: {partitions: 2, max_delay: 40d}\n")
    derived = {t.name: t for t in topology.desired_topics()}
    assert derived["sched-test.schedule"].partitions == 2
    assert derived["sched-test.schedule.wait.1d"].config["retention.ms"] == str(8 * 86_400_000)
    assert derived["sched-test.schedule.cancelled"].config == {
        "cleanup.policy": "compact,delete", "retention.ms": str(47 * 86_400_000)}
    assert derived["sched-test.schedule.state"].partitions == 1
    assert [n for n in derived if ".wait." in n] == [
        f"sched-test.schedule.wait.{label}" for label in
        ("100ms", "250ms", "500ms", "1s", "5s", "30s", "2m", "10m", "1h", "6h", "1d")]
    replies = derived["shop.replies"]
    assert replies.partitions == 4 and replies.config["retention.ms"] == "3600000"


def test_without_scheduling_there_are_no_scheduling_topics(workdir: Path) -> None:
    topology = load(workdir, "")
    assert topology.scheduling_topics is None
    assert not [t for t in topology.desired_topics() if "schedule" in t.name]


def test_schedule_mistakes_are_reported_at_their_lines(workdir: Path) -> None:
    found = problems(workdir, """\
        schedules:
          bad-cron: {cron: "0 25 * * *", event: order.created}
          bad-zone: {cron: "0 2 * * *", timezone: Europe/Berln, event: order.created}
          nobody-publishes:
            cron: "@daily"
            event: order.cancelled
            data: {order_id: x, reason: nightly, cancelled_at: "{tick}"}
          unknown: {every: 1h, event: order.shipped}
          both: {every: 1h, cron: "@daily", event: order.created}
          bad-data:
            every: 1h
            event: order.created
            data: {order_id: x}
        """)
    text = "\n".join(f"{line}: {message}" for line, message in found)
    assert (20, "schedules.bad-cron.cron: hour 25 is out of range 0-23") in found, text
    assert (21, "schedules.bad-zone.timezone: unknown timezone 'Europe/Berln' "
                "(did you mean 'Europe/Berlin'?)") in found, text
    assert any(line == 24 and "emits 'order.cancelled', which no producer declares" in m
               for line, m in found), text
    assert any(line == 26 and "unknown event 'order.shipped'" in m for line, m in found), text
    assert any(line == 27 and "exactly one of cron" in m for line, m in found), text
    assert any(line == 31 and "data does not make a valid order.created" in m
               for line, m in found), text


def test_a_consumer_cannot_be_called_scheduler(workdir: Path) -> None:
    found = problems(workdir, "consumers:\n  scheduler: {subscribes: [order.created], "
                              "handler: json:dumps}\n")
    assert any("reserved for `tidings run scheduler`" in m for _, m in found)


def test_an_environment_changes_a_schedule_but_not_its_event(workdir: Path) -> None:
    extra = """\
        schedules:
          report:
            cron: "*/10 * * * * *"
            event: order.created
            data: {order_id: r, customer_id: c, customer_email: a@b.example, currency: EUR,
                   items: [{sku: S, quantity: 1, unit_price_cents: 0}], total_cents: 0,
                   created_at: "{tick}"}
        environments:
          prod:
            schedules:
              report: {cron: "0 2 * * *", timezone: Europe/Berlin}
        """
    path = workdir / "topology.yaml"
    path.write_text(BASE + textwrap.dedent(extra))
    prod = load_topology(path, env="prod", check_imports=False)
    assert prod.schedules["report"].cron == "0 2 * * *"
    path.write_text(BASE + textwrap.dedent(extra.replace(
        "timezone: Europe/Berlin}", "event: order.cancelled}")))
    with pytest.raises(TopologyInvalid, match="event is the same in every environment"):
        load_topology(path, env="prod", check_imports=False)


def test_a_delayed_event_keeps_its_bytes_and_id_and_travels_to_the_scheduler(
        workdir: Path) -> None:
    from tests.integration.shop_support import an_order

    topology = load(workdir, "scheduling: {max_delay: 1d}\n")
    prepared = EventPreparer(topology, "shop").prepare(an_order())
    now = 1_800_000_000_000
    scheduled, sid, due = schedule(prepared, topology, deliver_at=None,
                                   delay=timedelta(minutes=5), schedule_id="remind-1", now=now)
    assert (scheduled.topic, scheduled.key, sid, due) == (
        "sched-test.schedule", b"remind-1", "remind-1", now + 300_000)
    assert scheduled.value == prepared.value and scheduled.event_id == prepared.event_id
    entry = read_entry(scheduled.headers)
    assert entry is not None
    assert (entry.target_topic, entry.target_key, entry.deliver_at, entry.scheduled_at) == (
        "orders", prepared.key, now + 300_000, now)
    hopped = hop_headers(scheduled.headers, now + 60_000)
    assert read_entry(hopped).not_before == now + 60_000  # type: ignore[union-attr]
    delivered = dict(delivery_headers(hopped))
    assert delivered[h.EVENT_ID] == prepared.event_id.encode()
    assert delivered[h.SCHEDULE_ID] == b"remind-1"
    assert not {h.TARGET_TOPIC, h.TARGET_KEY, h.NOT_BEFORE, h.SCHEDULED_AT} & set(delivered)


def test_due_times_refuse_what_cannot_be_meant(workdir: Path) -> None:
    now = 1_800_000_000_000
    with pytest.raises(ScheduleRefused, match="has no time zone"):
        due_time(deliver_at=datetime(2027, 1, 1), delay=None, now=now, max_delay_ms=10**12)
    with pytest.raises(ScheduleRefused, match="negative"):
        due_time(deliver_at=None, delay=timedelta(seconds=-1), now=now, max_delay_ms=10**12)
    with pytest.raises(ScheduleRefused, match=r"more than scheduling\.max_delay"):
        due_time(deliver_at=None, delay=timedelta(days=31), now=now,
                 max_delay_ms=30 * 86_400_000)
    with pytest.raises(ScheduleRefused, match="not both"):
        due_time(deliver_at=datetime.now(UTC), delay=timedelta(1), now=now, max_delay_ms=1)
    from tests.integration.shop_support import an_order

    topology = load(workdir, "")
    prepared = EventPreparer(topology, "shop").prepare(an_order())
    with pytest.raises(ScheduleRefused, match="declares no scheduling"):
        schedule(prepared, topology, deliver_at=None, delay=timedelta(1), schedule_id=None)


def test_the_tier_never_overshoots_the_time_left_but_by_the_shortest() -> None:
    assert tier_for(40).label == "100ms"  # at most 100 ms late, never early
    assert tier_for(999).label == "500ms"
    assert tier_for(1000).label == "1s"
    assert tier_for(29_999).label == "5s"
    assert tier_for(3 * 86_400_000).label == "1d"


def test_a_tick_has_a_derived_id_and_its_schedule_in_headers(workdir: Path) -> None:
    topology = load(workdir, """\
        schedules:
          report:
            cron: "0 2 * * *"
            timezone: Europe/Berlin
            event: order.created
            data:
              order_id: "report-{tick_date}"
              customer_id: scheduler
              customer_email: ops@shop.example
              currency: EUR
              items: [{sku: REPORT, quantity: 1, unit_price_cents: 0}]
              total_cents: 0
              created_at: "{tick}"
        """)
    tick = int(datetime(2026, 11, 2, 1, 0, tzinfo=UTC).timestamp() * 1000)
    prepared = tick_event(topology, "report", EventPreparer(topology, "shop"), tick)
    headers = dict(prepared.headers)
    assert prepared.event_id == tick_event_id("sched-test", "report", tick)
    again = tick_event(topology, "report", EventPreparer(topology, "shop"), tick)
    assert again.event_id == prepared.event_id and again.value == prepared.value
    assert headers[h.SCHEDULE] == b"report" and headers[h.TICK] == b"2026-11-02T01:00:00.000Z"
    assert prepared.key == b"report-2026-11-02" and prepared.topic == "orders"


def test_acls_cover_the_scheduler_publishing_later_and_replies(workdir: Path) -> None:
    from tidings.topology.acls import derive_acls

    topology = load(workdir, """\
          answers: {publishes: [order.cancelled]}
        scheduling: {}
        consumers:
          answers: {subscribes: [order.created], handler: json:dumps}
          tally: {subscribes: [order.created], handler: json:dumps}
        """)
    acls = {acl.describe() for acl in derive_acls(topology).acls}
    assert "User:shop WRITE TOPIC sched-test.schedule" in acls
    assert "User:shop WRITE TOPIC sched-test.schedule.cancelled" in acls
    assert "User:scheduler READ TOPIC sched-test.schedule.wait.1h" in acls
    assert "User:scheduler WRITE TOPIC orders" in acls
    assert "User:scheduler WRITE TRANSACTIONAL_ID sched-test.schedule.scheduler. (prefixed)" \
        in acls
    assert "User:shop READ TOPIC shop.replies" in acls
    assert "User:answers WRITE TOPIC shop.replies" in acls
    # A group that publishes nothing has no outbox to reply through.
    assert "User:tally WRITE TOPIC shop.replies" not in acls

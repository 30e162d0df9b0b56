"""``tidings dlq`` against a real broker: list, show, fix-and-redrive, purge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from replay_support import make_services
from shop_support import an_order, eventually, headers_of, read_all

from tidings.audit import AuditLog
from tidings.cli import main
from tidings.dlq import LetterFilter, dlq_summary, plan_redrive
from tidings.producer.publisher import Publisher
from tidings.replay import Cluster

pytestmark = pytest.mark.integration

EFFECTS = "SELECT event_id, customer, attempt FROM effects ORDER BY rowid"


@pytest.fixture(autouse=True)
def _bootstrap(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)


def test_fix_and_redrive_applies_each_event_once_and_returns_the_still_failing(
    tmp_path: Path, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    services = make_services(tmp_path)
    group = services.group("fixable")
    dlq = f"{services.orders}.{group}.dlq"
    replay = f"{services.orders}.{group}.replay"
    cli = ["dlq", "--group", group]
    topo = ["-f", str(services.topology.path)]
    (tmp_path / "broken").write_text("bug 12")
    fixable = [an_order(customer_id="c-fixable") for _ in range(4)]
    doomed = [an_order(customer_id="still-broken") for _ in range(2)]
    with running_group(services, "fixable"):
        with Publisher(services.topology, "order-service") as publisher:
            deliveries = publisher.publish_many([*fixable, *doomed])
        read_all(kafka_bootstrap, dlq, expect=6, timeout=30)

        assert main([*cli[:1], "list", *topo, *cli[1:]]) == 0
        listed = capsys.readouterr().out
        assert "RuntimeError" in listed and " 6 " in listed
        assert main([*cli[:1], "show", *topo, *cli[1:], "--limit", "2"]) == 0
        shown = capsys.readouterr().out
        assert "attempt 2" in shown and "bug 12 hit by" in shown
        assert '"customer_id": ' in shown
        assert "letters 1-2 of 6 (6 distinct events); 4 more: --offset 2" in shown

        (tmp_path / "broken").unlink()  # the fix is deployed
        assert main([*cli[:1], "redrive", *topo, *cli[1:]]) == 0
        plan = capsys.readouterr().out
        assert "6 selected, 6 to send" in plan and "Dry run: nothing sent" in plan
        assert sum(h for _, h in Cluster(services.topology).watermarks(
            replay, [0, 1, 2]).values()) == 0

        assert main([*cli[:1], "redrive", *topo, *cli[1:], "--yes", "--rate", "50",
                     "--no-progress"]) == 0
        assert "Redrove 6 event(s)" in capsys.readouterr().out
        eventually(lambda: len(services.query("fixable", EFFECTS)) == 4, 30, "the fixed four")
        again = read_all(kafka_bootstrap, dlq, expect=8, timeout=30)[6:]
        time.sleep(1.0)
        effects = services.query("fixable", EFFECTS)
        assert sorted(e[0] for e in effects) == sorted(d.event_id for d in deliveries[:4])
        assert {e[2] for e in effects} == {1}, "attempt was reset for the redrive"

    doomed_ids = {d.event_id for d in deliveries[4:]}
    assert {headers_of(m)["event-id"] for m in again} == doomed_ids
    for message in again:
        headers = headers_of(message)
        assert headers["attempt"] == "2", "through the tier again, then back to the DLQ"
        history = json.loads(headers["redrive-history"])
        assert [(e["attempt"], e["error-class"]) for e in history] == [(2, "RuntimeError")]
        assert headers["original-topic"] == services.orders

    (summary,) = dlq_summary(services.topology, group)
    assert (summary.error_class, summary.count, summary.redriven) == ("RuntimeError", 8, 6)

    # The next redrive leaves out what was sent already; the cap holds back repeaters.
    second = plan_redrive(services.topology, group)
    assert second.selected == 2 and second.earlier == 6
    capped = plan_redrive(services.topology, group, max_redrives=1)
    assert capped.selected == 0 and capped.held == 2
    assert plan_redrive(services.topology, group, max_redrives=1, force=True).selected == 2

    # Purge: a dry run counts, --yes deletes and prints the count.
    assert main([*cli[:1], "purge", *topo, *cli[1:], "--before", "now"]) == 0
    assert "total: 8 dead letter(s)" in capsys.readouterr().out
    assert main([*cli[:1], "purge", *topo, *cli[1:], "--before", "now", "--yes"]) == 0
    assert "Purged 8 dead letter(s)" in capsys.readouterr().out
    assert main([*cli[:1], "list", *topo, *cli[1:]]) == 0
    assert f"no dead letters: {group}" in capsys.readouterr().out


def test_dlq_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = make_services(tmp_path)
    topo = ["-f", str(services.topology.path)]
    assert main(["dlq", "show", *topo, "--group", "nope"]) == 1
    assert "declared:" in capsys.readouterr().err
    assert main(["dlq", "purge", *topo, "--group", services.group("fixable"), "--before",
                 "0:5", "--yes"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--before" in err and "\n" not in err
    # Nothing selected: an empty plan, exit 0.
    assert main(["dlq", "redrive", *topo, "--group", services.group("fixable"),
                 "--error-class", "NoSuchError", "--yes"]) == 0
    assert "Nothing to redrive." in capsys.readouterr().out


def running_group(services, name):  # type: ignore[no-untyped-def]
    from runtime_support import running

    return running(services.runtime(name))


class InterruptOnce:
    """A terminal-like progress stream whose third redraw is a Ctrl-C."""

    def __init__(self) -> None:
        self.writes = 0

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes == 3:
            raise KeyboardInterrupt
        return len(text)

    def flush(self) -> None:
        pass


def test_an_interrupted_redrive_resumed_sends_each_event_once(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    from tidings.dlq import execute_redrive
    from tidings.replay import REDRIVE_ID

    services = make_services(tmp_path)
    group = services.group("fixable")
    dlq = f"{services.orders}.{group}.dlq"
    replay = f"{services.orders}.{group}.replay"
    (tmp_path / "broken").write_text("bug 12")
    with running_group(services, "fixable"):
        with Publisher(services.topology, "order-service") as publisher:
            deliveries = publisher.publish_many([an_order() for _ in range(30)])
        read_all(kafka_bootstrap, dlq, expect=30, timeout=30)
    (tmp_path / "broken").unlink()

    plan = plan_redrive(services.topology, group)
    assert plan.remaining == 30
    with pytest.raises(KeyboardInterrupt):
        execute_redrive(plan, services.topology, rate=20, progress=InterruptOnce())  # type: ignore[arg-type]
    sent = sum(h for _, h in Cluster(services.topology).watermarks(replay, [0, 1, 2]).values())
    assert 0 < sent < 30

    resumed = plan_redrive(services.topology, group)
    assert resumed.resumed and resumed.redrive_id == plan.redrive_id
    assert len(resumed.done) == sent and resumed.remaining == 30 - sent
    result = execute_redrive(resumed, services.topology, show_progress=False)
    assert result.sent == 30 - sent

    copies = read_all(kafka_bootstrap, replay)
    assert sorted(headers_of(m)["event-id"] for m in copies) == \
        sorted(d.event_id for d in deliveries)
    assert {headers_of(m)[REDRIVE_ID] for m in copies} == {plan.redrive_id}
    with running_group(services, "fixable"):
        eventually(lambda: len(services.query("fixable", EFFECTS)) == 30, 30, "all 30 applied")
        time.sleep(1.0)
    assert len(services.query("fixable", EFFECTS)) == 30
    assert plan_redrive(services.topology, group).selected == 0, "a finished redrive is done"


def test_copies_beside_events_filters_and_pages(
    tmp_path: Path, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event delivered twice and failing twice is two letters of one event: `dlq list`
    says so, filters pick letters by type, id, key and time, `show` pages with
    --offset, and a redrive of a selection sends each chosen event once."""
    from confluent_kafka import Producer

    services = make_services(tmp_path)
    group = services.group("fixable")
    dlq = f"{services.orders}.{group}.dlq"
    replay = f"{services.orders}.{group}.replay"
    topo = ["-f", str(services.topology.path), "--group", group]
    (tmp_path / "broken").write_text("bug 12")
    orders = [an_order(customer_id=f"c-{i}") for i in range(5)]
    with running_group(services, "fixable"):
        with Publisher(services.topology, "order-service") as publisher:
            deliveries = publisher.publish_many(orders)
        originals = read_all(kafka_bootstrap, services.orders, expect=5, timeout=30)
        twice = [m for m in originals if headers_of(m)["event-id"] in
                 {deliveries[0].event_id, deliveries[1].event_id}]
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for message in twice:  # redelivered byte for byte, as after a crash
            producer.produce(services.orders, key=message.key(), value=message.value(),
                             headers=message.headers(), partition=message.partition())
        producer.flush(10)
        read_all(kafka_bootstrap, dlq, expect=7, timeout=30)

    assert main(["dlq", "list", *topo]) == 0
    listed = capsys.readouterr().out
    row = next(line for line in listed.splitlines() if line.startswith(group))
    assert row.split()[1:5] == ["RuntimeError", "7", "5", "0"], listed
    assert "letters > events" in listed

    key = orders[2].order_id
    assert main(["dlq", "show", *topo, "--key", key]) == 0
    shown = capsys.readouterr().out
    assert f"key {key}" in shown and "letters 1-1 of 1" in shown
    assert main(["dlq", "show", *topo, "--event-id", deliveries[0].event_id]) == 0
    assert "letters 1-2 of 2 (1 distinct events)" in capsys.readouterr().out
    assert main(["dlq", "show", *topo, "--event-type", "order.cancelled"]) == 0
    assert "no dead letters for group" in capsys.readouterr().out
    assert main(["dlq", "show", *topo, "--to", "-1h"]) == 0
    assert "no dead letters for group" in capsys.readouterr().out

    pages = []
    for offset in (0, 3, 6):
        assert main(["dlq", "show", *topo, "--limit", "3", "--offset", str(offset)]) == 0
        out = capsys.readouterr().out
        pages.append([line.split()[0] for line in out.splitlines() if line.startswith(dlq)])
    assert [len(p) for p in pages] == [3, 3, 1]
    assert len({c for p in pages for c in p}) == 7, "pages neither overlap nor skip"
    assert main(["dlq", "show", *topo, "--from", "-1h", "--to", "-2h"]) == 1
    assert "is after --to" in capsys.readouterr().err

    (tmp_path / "broken").unlink()
    chosen = [deliveries[0].event_id, deliveries[2].event_id]
    plan = plan_redrive(services.topology, group, select=LetterFilter.parse(event_ids=chosen))
    assert (plan.selected, plan.copies, plan.other) == (2, 1, 4)
    assert "1 more letter(s) of the same events are older copies, sent once" in plan.render()
    assert main(["dlq", "redrive", *topo, *[a for i in chosen for a in ("--event-id", i)],
                 "--yes", "--no-progress"]) == 0
    assert "Redrove 2 event(s)" in capsys.readouterr().out
    (audited, *_) = [r for r in AuditLog(Cluster(services.topology)).records()
                     if r.target == group]
    assert (audited.via, audited.action) == ("cli", "dlq.redrive")
    assert audited.outcome.startswith("done: redrove 2 event(s)")
    assert "2 selected, 2 to send" in audited.plan
    sent = read_all(kafka_bootstrap, replay, expect=2, timeout=30)
    assert sorted(headers_of(m)["event-id"] for m in sent) == sorted(chosen)
    with running_group(services, "fixable"):
        eventually(lambda: len(services.query("fixable", EFFECTS)) == 2, 30, "two applied")
    assert sorted(e[0] for e in services.query("fixable", EFFECTS)) == sorted(chosen)

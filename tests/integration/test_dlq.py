"""``tidings dlq`` against a real broker: list, show, fix-and-redrive, purge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from replay_support import make_services
from shop_support import an_order, eventually, headers_of, read_all

from tidings.cli import main
from tidings.dlq import dlq_summary, plan_redrive
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
        assert '"customer_id": ' in shown and "4 more (of 6)" in shown

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

"""The operations console in a real browser: a real broker, running groups, a handler
that really fails, and an operator (or a viewer, or no one) at the page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from shop import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    ConsoleProcess,
    Running,
    Shop,
    an_order,
    eventually,
    make_shop,
    start_console,
)

from tidings.cli import main
from tidings.producer.publisher import Delivery, Publisher
from tidings.replay import Cluster

pytestmark = pytest.mark.integration

ORDERS = 30
POINTS = "SELECT event_id FROM points"


@dataclass
class Live:
    shop: Shop
    console: ConsoleProcess
    deliveries: list[Delivery]

    @property
    def loyalty(self) -> str:
        return self.shop.group("loyalty")

    @property
    def analytics(self) -> str:
        return self.shop.group("analytics")


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The shop with its groups running, every loyalty event dead-lettered by bug 12 (and
    one poison record), the bug then fixed, and the console started."""
    from confluent_kafka import Producer

    root = tmp_path_factory.mktemp("console-shop")
    patch = pytest.MonkeyPatch()
    patch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    shop = make_shop(root, kafka_bootstrap)
    (root / "broken").write_text("bug 12")
    running = Running()
    console: ConsoleProcess | None = None
    try:
        for name in ("inventory", "analytics", "loyalty"):
            running.start(shop.runtime(name))
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(shop.orders, key=b"poison-1", value=b"\x00not an event",
                         headers=[("event-id", b"poison-1")])
        producer.flush(10)
        with Publisher(shop.topology, "order-service") as publisher:
            deliveries = publisher.publish_many(
                [an_order(i) for i in range(ORDERS)])
        eventually(lambda: shop.dlq_size("loyalty") == ORDERS + 1, 60,
                   "every loyalty event in the DLQ")
        (root / "broken").unlink()  # the fix is deployed; the letters wait for a redrive
        console = start_console(shop)
        yield Live(shop, console, deliveries)
    finally:
        if console is not None:
            console.stop()
        running.stop()
        patch.undo()
    assert not running.failures, running.failures


def sign_in(page: Any, live: Live, token: str, who: str) -> None:
    page.goto(f"{live.console.url}/login")
    page.fill("input[name=token]", token)
    page.fill("input[name=who]", who)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.console.url}/")


def screenshot(page: Any, name: str) -> None:
    """Kept under $TIDINGS_SCREENSHOTS (e.g. docs/images) when set: the README's images."""
    folder = os.environ.get("TIDINGS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_refused_without_a_token(page: Any, live: Live) -> None:
    for path in ("/", "/dlq", f"/groups/{live.loyalty}", "/audit"):
        response = page.goto(f"{live.console.url}{path}")
        assert response.status == 401
        assert "A token is needed" in page.inner_text("main")
    answer = page.request.post(f"{live.console.url}/dlq/redrive/run", form={"plan": "x"})
    assert answer.status == 401
    page.goto(f"{live.console.url}/login")
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    assert "That token is not valid." in page.inner_text("main")
    assert page.context.cookies() == [] or all(
        c["name"] != "tidings_session" for c in page.context.cookies())


def test_an_operator_reads_a_letter_redrives_it_and_sees_the_count_fall(
    page: Any, live: Live
) -> None:
    from playwright.sync_api import expect

    sign_in(page, live, OPERATOR_TOKEN, "Ada")
    waiting = page.locator(f'[data-dlq-waiting="{live.loyalty}"]')
    expect(waiting).to_have_text(str(ORDERS + 1))
    expect(page.locator(f'[data-node="{live.loyalty}"]')).to_contain_text(
        f"DLQ {ORDERS + 1} waiting")
    first = page.evaluate(_SERVER_TIMING)
    page.reload()
    print(f"\noverview: first {first}, then {page.evaluate(_SERVER_TIMING)}", end=" ")
    if os.environ.get("TIDINGS_SCREENSHOTS"):
        page.wait_for_timeout(2500)  # one live refresh: the rates are in
        screenshot(page, "console-overview.png")

    page.goto(f"{live.console.url}/dlq?group={live.loyalty}&limit=12")
    expect(page.locator("[data-pager]")).to_contain_text(f"letters 1-12 of {ORDERS + 1}")
    screenshot(page, "console-dead-letters.png")
    chosen = live.deliveries[0].event_id
    page.goto(f"{live.console.url}/dlq?group={live.loyalty}&event_id={chosen}")
    page.click("[data-letter]")
    expect(page.locator("[data-error]")).to_contain_text("bug 12: no points rule for cust-0")
    expect(page.locator("[data-event]")).to_contain_text('"customer_id": "cust-0"')

    page.click("[data-redrive-one]")
    expect(page.locator("[data-plan]")).to_contain_text("total: 1 selected, 1 to send")
    page.click("[data-run]")
    expect(page.locator("[data-job-state=finished]")).to_be_visible()
    expect(page.locator(".notice.ok")).to_contain_text("redrove 1 event(s)")
    expect(page.locator("[data-processed]")).to_have_attribute("data-processed", "1/1",
                                                               timeout=30_000)
    assert [row[0] for row in live.shop.query("loyalty", POINTS)] == [chosen]

    page.goto(f"{live.console.url}/")
    expect(page.locator(f'[data-dlq-waiting="{live.loyalty}"]')).to_have_text(str(ORDERS))
    page.goto(f"{live.console.url}/audit")
    row = page.locator("table.audit tbody tr").first
    expect(row).to_contain_text("dlq.redrive")
    expect(row).to_contain_text("Ada")
    expect(row).to_contain_text("done: redrove 1 event(s)")


def test_an_operator_plans_a_replay_runs_it_and_watches_it_reach_100(
    page: Any, live: Live
) -> None:
    from playwright.sync_api import expect

    sign_in(page, live, OPERATOR_TOKEN, "Ada")
    page.goto(f"{live.console.url}/replay")
    page.select_option("select[name=group]", live.analytics)
    page.select_option("select[name=topic]", live.shop.orders)
    page.fill("input[name=from]", "-1h")
    page.check("input[name=reprocess]")
    page.fill("input[name=rate]", "15")
    page.click("[data-replay-form] button[type=submit]")
    plan = page.locator("[data-plan]")
    expect(plan).to_contain_text(f"-> group {live.analytics}")
    expect(plan).to_contain_text("mode:    copy")
    expect(plan).to_contain_text(f"({ORDERS + 1} to copy)")
    page.click("[data-run]")
    seen: list[int] = []
    page.wait_for_selector("[data-progress]")
    while not page.locator("[data-job-state=finished]").count():
        value = page.locator("[data-progress]").get_attribute("data-progress")
        if value is not None:
            seen.append(int(value))
        page.wait_for_timeout(150)
    expect(page.locator("[data-percent]")).to_have_text("100%")
    expect(page.locator(".progress-line")).to_contain_text(f"{ORDERS + 1}/{ORDERS + 1} events")
    expect(page.locator(".notice.ok")).to_contain_text(f"copied {ORDERS + 1} event(s)")
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    expect(page.locator("[data-processed]")).to_have_attribute(
        "data-processed", f"{ORDERS + 1}/{ORDERS + 1}", timeout=30_000)


def test_a_viewer_sees_everything_and_is_refused_every_action(page: Any, live: Live) -> None:
    from playwright.sync_api import expect

    replay = f"{live.shop.orders}.{live.loyalty}.replay"
    before = Cluster(live.shop.topology).watermarks(replay, [0, 1, 2])
    sign_in(page, live, VIEWER_TOKEN, "Vic")
    page.goto(f"{live.console.url}/dlq?group={live.loyalty}")
    waiting = page.locator("[data-waiting]").inner_text()
    page.click("[data-redrive-all]")
    expect(page.locator("[data-plan]")).to_contain_text("to send")
    expect(page.locator("main")).to_contain_text("Only an operator may run this plan.")
    with page.expect_response(lambda r: r.url.endswith("/dlq/redrive/run")) as answer:
        page.click("[data-run]")
    assert answer.value.status == 403
    expect(page.locator("main")).to_contain_text(
        "refused: the viewer role may not dlq redrive; sign in with the operator token")
    assert Cluster(live.shop.topology).watermarks(replay, [0, 1, 2]) == before
    page.goto(f"{live.console.url}/dlq?group={live.loyalty}")
    expect(page.locator("[data-waiting]")).to_have_text(waiting)
    page.goto(f"{live.console.url}/audit")
    expect(page.locator("table.audit tbody tr").first).to_contain_text("refused")
    page.goto(f"{live.console.url}/topology")
    expect(page.locator("main")).to_contain_text("No changes. The cluster matches the file.")
    page.goto(f"{live.console.url}/groups/{live.loyalty}")
    expect(page.locator("main")).to_contain_text(f"{live.shop.orders}.{live.loyalty}.retry.1s")
    expect(page.locator("main")).to_contain_text("bug 12: no points rule")


def test_bad_input_gets_the_clis_message_on_the_page(
    page: Any, live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import expect

    topology = ["-f", str(live.shop.topology.path)]
    assert main(["replay", *topology, "--group", live.analytics, "--topic", live.shop.orders,
                 "--from", "2026-03-14T15:00Z", "--to", "2026-03-14T14:00Z"]) == 1
    cli = capsys.readouterr().err.strip()
    assert cli.startswith("tidings: --from 2026-03-14T15:00:00Z") and "is after --to" in cli
    sign_in(page, live, OPERATOR_TOKEN, "Ada")
    page.goto(f"{live.console.url}/replay")
    page.select_option("select[name=group]", live.analytics)
    page.fill("input[name=from]", "2026-03-14T15:00Z")
    page.fill("input[name=to]", "2026-03-14T14:00Z")
    with page.expect_response(lambda r: r.url.endswith("/replay/plan")) as answer:
        page.click("[data-replay-form] button[type=submit]")
    assert answer.value.status == 400
    expect(page.locator("[role=alert]")).to_have_text(cli)
    expect(page.locator("main")).to_contain_text("Nothing was changed.")
    response = page.goto(f"{live.console.url}/groups/nope")
    assert response.status == 400
    expect(page.locator("[role=alert]")).to_contain_text("unknown consumer group 'nope'")
    page.goto(f"{live.console.url}/dlq?group={live.loyalty}&from=-1h&to=-2h")
    expect(page.locator("[role=alert]")).to_contain_text("is after --to")
    page.goto(f"{live.console.url}/dlq/letter?topic={live.shop.orders}.{live.loyalty}.dlq"
              "&partition=0&offset=x")
    expect(page.locator("[role=alert]")).to_have_text("tidings: offset 'x' is not a whole number")


_SERVER_TIMING = """() => performance.getEntriesByType('navigation')
  .map(e => (e.serverTiming || []).map(t => t.name + ' ' + t.duration.toFixed(1) + ' ms')
  .join(', ')).join('')"""

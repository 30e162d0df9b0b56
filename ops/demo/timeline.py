"""The demo's events in time and conversations: a delayed reminder, a recurring tick,
a request-reply round trip and webhooks to a local receiver, each checked."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from consumers.email.smtp_sink import messages
from consumers.webhooks.receiver import WebhookReceiver
from ops.demo.processes import free_port
from tidings.errors import TidingsError
from tidings.settings import kafka_properties_from_env

REMINDERS = 5          # scheduled 5 s ahead; the last one is cancelled
REMINDER_DELAY = 5.0
CALLBACK_EVERY = 50    # every 50th order (offset 7: never one that is cancelled) has a
CALLBACK_OFFSET = 7    # callback_url
FAIL_FIRST = 3         # the receiver answers 500 to its first three requests


def scrape_metrics(port: int) -> dict[str, float]:
    """Sample name (with labels folded) -> summed value, from a /metrics endpoint."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return {}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


@dataclass
class Timeline:
    """State of the four stories through one demo run."""

    work: Path
    receiver: WebhookReceiver | None = None
    report_endpoint: str = ""
    callback_orders: list[str] = field(default_factory=list)
    reminded: list[tuple[str, str, float]] = field(default_factory=list)  # id, email, due
    cancelled_reminder: tuple[str, str] | None = None
    stock_replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: When the receiver's endpoint was registered: ticks from then on reach it.
    registered_at: float = 0.0

    @staticmethod
    def wants_callback(index: int) -> bool:
        return index % CALLBACK_EVERY == CALLBACK_OFFSET

    # -- set-up ------------------------------------------------------------------------

    def start_receiver(self, api_port: int) -> None:
        """Register the local receiver for the sales-report ticks, and listen with the
        secrets of that endpoint and of the callbacks endpoint."""
        port = free_port()
        api = f"http://127.0.0.1:{api_port}"
        with httpx.Client(base_url=api, timeout=10) as client:
            created = client.post("/endpoints", json={
                "url": f"http://127.0.0.1:{port}/reports", "events": ["report.requested"],
                "description": "the demo's receiver"})
            if created.status_code != 201:
                raise TidingsError(f"POST /endpoints answered {created.status_code}: "
                                   f"{created.text[:200]}")
            callbacks = client.get("/endpoints/callbacks/secret").json()["secret"]
        endpoint = created.json()
        self.registered_at = time.time()
        self.report_endpoint = endpoint["id"]
        self.receiver = WebhookReceiver(port, [endpoint["secret"], callbacks],
                                        fail_first=FAIL_FIRST)
        self.receiver.up()
        print(f"  webhook receiver at {self.receiver.url} (endpoint {endpoint['id']} for "
              "report.requested; order callbacks signed by the callbacks endpoint)")

    def callback_url(self) -> str:
        assert self.receiver is not None
        return f"{self.receiver.url}/orders"

    def schedule_reminders(self, client: httpx.Client, candidates: list[str]) -> None:
        """Reminders for a few orders 5 s ahead, through the order service; cancel one."""
        for order_id in candidates[:REMINDERS]:
            answer = client.post(f"/orders/{order_id}/reminder",
                                 json={"in_seconds": REMINDER_DELAY,
                                       "note": "Have a look at your order."})
            if answer.status_code != 202:
                raise TidingsError(f"POST /orders/{order_id}/reminder answered "
                                   f"{answer.status_code}: {answer.text[:200]}")
            due = datetime.fromisoformat(answer.json()["deliver_at"]).timestamp()
            email = client.get(f"/orders/{order_id}").json()["customer_email"]
            self.reminded.append((order_id, email, due))
        order_id, email, _ = self.reminded.pop()
        if client.delete(f"/orders/{order_id}/reminder").status_code != 202:
            raise TidingsError("DELETE /orders/{id}/reminder failed")
        self.cancelled_reminder = (order_id, email)
        print(f"  {REMINDERS} reminders scheduled {REMINDER_DELAY:g}s ahead, one cancelled")

    # -- progress ----------------------------------------------------------------------

    def reminder_mails(self) -> list[Any]:
        return [m for m in messages(self.work / "mailbox.db")
                if (m.subject or "").startswith("Reminder about your order")]

    def callbacks(self) -> dict[str, dict[str, Any]]:
        """Order id -> the outcome its callback delivered."""
        assert self.receiver is not None
        return {b["data"]["order_id"]: b["data"] for b in self.receiver.bodies()
                if b.get("type") == "order.status_changed"}

    def report_ticks(self) -> list[int]:
        """The ticks (epoch seconds) the receiver got as report.requested webhooks."""
        assert self.receiver is not None
        return sorted(_seconds(b["data"]["period_end"]) for b in self.receiver.bodies()
                      if b.get("type") == "report.requested")

    def waiting(self) -> list[str]:
        """What the four stories still wait for."""
        wait = []
        if len(self.reminder_mails()) < len(self.reminded):
            wait.append("reminders")
        if self.reminded and time.time() < max(d for _, _, d in self.reminded) + 3:
            wait.append("the cancelled reminder's time")
        if len(self.callbacks()) < len(self.callback_orders):
            wait.append("callbacks")
        if not [t for t in self.report_ticks() if t > self.registered_at]:
            wait.append("a report tick")
        return wait

    # -- request-reply -----------------------------------------------------------------

    def ask_stock(self, client: httpx.Client, skus: list[str]) -> None:
        for sku in skus:
            answer = client.get(f"/stock/{sku}")
            if answer.status_code != 200:
                raise TidingsError(f"GET /stock/{sku} answered {answer.status_code}: "
                                   f"{answer.text[:200]}")
            self.stock_replies[sku] = answer.json()

    # -- checks ------------------------------------------------------------------------

    def summarize(self, check: Any, *, bootstrap: str, reports_topic: str,
                  statuses: dict[str, str], on_hand: dict[str, int],
                  scheduler_port: int) -> None:
        assert self.receiver is not None
        print("\nEvents in time and conversations:")
        # 1. The delayed reminder.
        mails = self.reminder_mails()
        by_order = {m.subject.rsplit(" ", 1)[1]: m for m in mails if m.subject}
        early = [o for o, _, due in self.reminded
                 if o in by_order and by_order[o].received_at_ms < due * 1000]
        late = [by_order[o].received_at_ms / 1000 - due for o, _, due in self.reminded
                if o in by_order]
        cancelled = self.cancelled_reminder[0] if self.cancelled_reminder else ""
        print(f"  delayed reminder: {len(mails)} of {len(self.reminded)} mailed when due "
              f"(at most {max(late, default=0):.1f}s after), the cancelled one "
              f"{'NOT ' if cancelled in by_order else ''}held back")
        check(sorted(by_order) == sorted(o for o, _, _ in self.reminded)
              and len(mails) == len(self.reminded),
              f"reminders: mailed {sorted(by_order)}, expected "
              f"{sorted(o for o, _, _ in self.reminded)}")
        check(not early, f"reminders mailed before they were due: {early}")
        check(cancelled not in by_order, "the cancelled reminder was mailed")
        metrics = scrape_metrics(scheduler_port)
        count = metrics.get("tidings_scheduler_lateness_seconds_count", 0)
        mean = metrics.get("tidings_scheduler_lateness_seconds_sum", 0) / count if count else 0
        print(f"    scheduler: {int(metrics.get('tidings_scheduler_dispatched_total', 0))} "
              f"delivered, {int(metrics.get('tidings_scheduler_cancelled_total', 0))} "
              f"cancelled, mean lateness {mean * 1000:.0f} ms")
        # 2. The recurring tick: every tick on the topic reached the receiver once.
        # Ticks from when the receiver was registered (the topic holds earlier runs' too).
        emitted = [t for t in _ticks_on(bootstrap, reports_topic) if t > self.registered_at]
        last = max(emitted, default=0)
        # Read after the topic: a tick emitted since then may already have arrived.
        received = [t for t in self.report_ticks() if self.registered_at < t <= last]
        print(f"  recurring tick: sales-report ticked {len(emitted)} time(s) every 10s, "
              f"each delivered once as a webhook")
        check(bool(emitted) and len(emitted) == len(set(emitted))
              and all(t % 10 == 0 for t in emitted),
              f"report ticks on {reports_topic}: {emitted}")
        # The newest tick may still be on its way to the receiver.
        check(len(received) == len(set(received))
              and set(emitted) - {last} <= set(received) <= set(emitted),
              f"report ticks delivered {received}, emitted {emitted}")
        # 3. Request-reply.
        wrong = {sku: (reply["on_hand"], on_hand.get(sku, 0))
                 for sku, reply in self.stock_replies.items()
                 if reply["on_hand"] != on_hand.get(sku, 0)}
        trips = sorted(r["round_trip_ms"] for r in self.stock_replies.values())
        median = trips[len(trips) // 2] if trips else 0
        print(f"  request-reply: GET /stock/<sku> asked inventory {len(trips)} times over "
              f"Kafka, every answer matches its stock (median round trip {median:.0f} ms)"
              if not wrong else f"  request-reply: answers differ: {wrong}")
        check(not wrong and len(trips) == len(on_hand), f"stock replies {wrong}")
        # 4. Webhooks.
        callbacks = self.callbacks()
        mismatched = {o: (callbacks.get(o, {}).get("status"), statuses.get(o))
                      for o in self.callback_orders
                      if callbacks.get(o, {}).get("status") != statuses.get(o)}
        stats = self.receiver.stats
        print(f"  webhooks: {len(callbacks)} order outcomes delivered to their callback_url, "
              f"signatures verified ({stats.rejected} rejected), {stats.failed} answered "
              f"500 and retried, {stats.duplicates} duplicate(s)")
        check(not mismatched and len(callbacks) == len(self.callback_orders),
              f"callbacks differ from the orders' statuses: {mismatched}")
        check(stats.rejected == 0, f"{stats.rejected} webhooks had a bad signature")
        check(stats.failed == FAIL_FIRST, f"{stats.failed} webhooks failed, expected "
              f"{FAIL_FIRST} (then retried)")
        counts = Counter(body.get("type") for body in self.receiver.bodies())
        check(sum(counts.values()) == len(stats.accepted), "webhook bodies counted twice")

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.down()


def _seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _ticks_on(bootstrap: str, topic: str) -> list[int]:
    """The period_end of every report tick on ``topic`` (read_committed, to its end)."""
    from tidings.codec import SchemaCatalogue, SingleObjectCodec
    from tidings.topology import load_topology

    topology = load_topology(Path(__file__).resolve().parents[2] / "topology.yaml",
                             check_imports=False)

    codec = SingleObjectCodec(SchemaCatalogue.from_events(topology.declared_events()))
    # TIDINGS_KAFKA_*: the admin's credentials under `tidings demo --secure`.
    consumer = Consumer({"bootstrap.servers": bootstrap, **kafka_properties_from_env(),
                         "group.id": "demo-ticks",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed"})
    found: list[int] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        open_ends = set(partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + 20
        while open_ends and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_ends.discard(message.partition())
                    continue
                record = codec.decode(message.value() or b"").record
                found.append(int(record["period_end"].timestamp()))
    finally:
        consumer.close()
    return sorted(found)

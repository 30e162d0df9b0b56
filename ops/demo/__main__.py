"""The whole story on one machine: broker, topology, services, orders, and a checked summary.

Starts a local Kafka (unless KAFKA_BOOTSTRAP_SERVERS names one), applies
topology.yaml, starts the order service, the inventory, email, analytics,
order-status and webhooks consumer services, the scheduler and an SMTP sink as
processes, places orders over HTTP (some for SKUs that run out, some cancelled, some
whose mail server fails once or rejects, some with a callback_url), schedules
reminders (and cancels one), injects redelivered duplicates and raw poison messages,
waits while every group catches up, asks inventory for its stock over request-reply,
and checks every number against what the inputs imply, including the reminders, the
recurring report ticks and the webhooks a local receiver verified. Exits 1 if any
does not match.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from consumers.analytics import analytics_report
from consumers.email.smtp_sink import message_ids
from consumers.inventory import inventory_report
from consumers.inventory.settings import DEFAULT_STOCK_FILE
from consumers.inventory.stock import load_stock_file
from ops.demo.observe import GroupCounts, scrape
from ops.demo.processes import REPO, ServiceProcess, free, free_port, wait_for_port
from ops.demo.scenario import Scenario, plan
from ops.demo.timeline import Timeline
from tidings.db import open_database
from tidings.errors import TidingsError
from tidings.kafka_local import LocalCluster
from tidings.kafka_local.security import ClusterSecurity
from tidings.settings import Settings
from tidings.topology import Topology, load_topology, sync
from tidings.topology.acls import services

GROUPS = ("inventory", "email", "analytics", "order-status")


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidings demo", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000, help="orders to place (1000)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to catch up")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the broker running afterwards")
    parser.add_argument("--keep", action="store_true",
                        help="leave everything running (broker, services) with the console "
                             "open; prints how to stop it")
    parser.add_argument("--console-port", type=int, default=8080,
                        help="the console's port with --keep (8080)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--secure", action="store_true",
                        help="on a secure local cluster (`tidings dev up --secure`): every "
                             "service on its own SCRAM principal, ACLs from topology.yaml")
    args = parser.parse_args(argv)
    if args.orders < 20:
        parser.error("--orders must be at least 20")
    try:
        return Demo(args).run()
    except TidingsError as exc:
        print(f"tidings demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tidings demo: interrupted", file=sys.stderr)
        return 130


def _end_offset(probe: Consumer, partition: TopicPartition) -> int:
    """The partition's high watermark, riding out a leader election just after apply."""
    for attempt in range(20):
        try:
            _, high = probe.get_watermark_offsets(partition, timeout=10)
            return int(high)
        except KafkaException as exc:
            error = exc.args[0]
            transient = error.retriable() or error.code() in (
                KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT)
            if attempt == 19 or not transient:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = REPO / ".tidings" / "demo"
        self.processes: dict[str, ServiceProcess] = {}
        self.ports: dict[str, int] = {}
        self.cluster: LocalCluster | None = None
        self.started_broker = False
        self.bootstrap = ""
        self.timeline = Timeline(self.work)
        self.stock_queries = 0
        self.tokens = ("", "")
        #: With --secure: the cluster's credentials; the demo itself acts as the admin.
        self.security: ClusterSecurity | None = None

    def client(self, **config: Any) -> dict[str, Any]:
        """librdkafka settings for the demo's own clients (the admin on a secure cluster)."""
        auth = self.security.client_properties() if self.security is not None else {}
        return {"bootstrap.servers": self.bootstrap, **auth, **config}

    # -- orchestration ---------------------------------------------------------------

    def run(self) -> int:
        began = time.monotonic()
        kept = False
        try:
            topology = self.prepare()
            self.start_services(topology)
            if self.args.keep:
                self.start_console()
            scenario = self.place_orders(topology)
            self.wait_until_caught_up(scenario)
            counts = self.ask_inventory(scenario)
            ok = self.summarize(scenario, counts)
            kept = self.args.keep
        finally:
            if not kept:
                self.timeline.stop()
                self.stop_everything()
        print(f"\nDemo {'passed' if ok else 'FAILED'} in {time.monotonic() - began:.0f}s.")
        if kept:
            self.tell_how_to_stop()
        return 0 if ok else 1

    def start_console(self) -> None:
        """The operations console over the demo's cluster (``--keep``)."""
        import secrets

        port = self.args.console_port
        if not free(port):
            port = free_port()
        self.tokens = (secrets.token_urlsafe(18), secrets.token_urlsafe(18))
        self.service("console", ["-m", "tidings", "console", "-f",
                                 str(REPO / "topology.yaml"), "--port", str(port)],
                     {"TIDINGS_CONSOLE_TOKEN": self.tokens[0],
                      "TIDINGS_CONSOLE_VIEWER_TOKEN": self.tokens[1]})
        if not wait_for_port(port, 60):
            raise TidingsError(f"the console did not start listening on port {port}:\n"
                               f"{self.processes['console'].tail()}")
        self.ports["console"] = port
        print(f"console at http://127.0.0.1:{port}/ (operator token {self.tokens[0]})")

    def tell_how_to_stop(self) -> None:
        step("Left running (--keep)")
        port = self.ports["console"]
        print(f"console:        http://127.0.0.1:{port}/\n"
              f"operator token: {self.tokens[0]}\nviewer token:   {self.tokens[1]}")
        for name, process in self.processes.items():
            pid = process.process.pid if process.process else "?"
            print(f"  {name:<14} pid {pid:<8} log {process.log}")
        pids = " ".join(str(p.process.pid) for p in self.processes.values() if p.process)
        print(f"Stop them with:  kill {pids}")
        if self.started_broker:
            print("and the broker with:  tidings dev down")

    def prepare(self) -> Topology:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        if self.args.secure:
            self.prepare_secure()
        elif Settings().bootstrap_servers:
            self.bootstrap = str(Settings().bootstrap_servers)
            step(f"Using the Kafka cluster at {self.bootstrap}")
        else:
            self.cluster = LocalCluster()
            if self.cluster.status().running:
                step("Using the local Kafka broker that is already running")
                self.bootstrap = self.cluster.up()
            else:
                step("Starting a local Kafka broker (KRaft, fresh data)")
                self.bootstrap = self.cluster.up(fresh=True)
                self.started_broker = True
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        print(f"Kafka at {self.bootstrap}")
        step("Applying topology.yaml")
        topology = load_topology(REPO / "topology.yaml")
        view = sync.connect(topology)
        the_plan = sync.plan(view)
        if the_plan.refusals or the_plan.destructive:
            raise TidingsError("topology.yaml needs refused or destructive changes on this "
                               "cluster; run `tidings topology plan`")
        sync.apply(view, the_plan)
        print(f"{len(the_plan.changes)} change(s) applied, "
              f"{len(topology.desired_topics())} topics in place")
        if not self.started_broker:
            self.skip_backlog(topology)
        return topology

    def prepare_secure(self) -> None:
        """Use (or start) the secure local cluster and give each service its SCRAM user."""
        cluster = LocalCluster.from_state_dir()
        if cluster is not None and cluster.secure and cluster.status().complete:
            step("Using the secure local Kafka cluster that is already running")
            self.bootstrap = cluster.up()
        else:
            step("Starting a secure local Kafka broker (SASL/SCRAM, ACLs enforced, fresh data)")
            cluster = LocalCluster(secure=True)
            self.bootstrap = cluster.up(fresh=True)
            self.started_broker = True
        self.cluster = cluster
        names = services(load_topology(REPO / "topology.yaml", check_imports=False))
        self.security = cluster.add_users(names)
        # The demo applies the topology and injects duplicates as the admin; each service
        # gets its own principal's variables instead (see service()).
        os.environ.update(self.security.environment(self.bootstrap))
        print(f"users: admin, {', '.join(names)} (passwords in "
              f"{cluster.state_dir / 'credentials.json'})")

    def skip_backlog(self, topology: Topology) -> None:
        """On a reused cluster, start each demo group at the end of its topics, so that
        events of earlier runs do not blur this run's numbers."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        from tidings.kafka_clients import admin_client

        admin = admin_client(self.client())
        probe = Consumer(self.client(**{"group.id": "tidings-demo-probe"}))
        try:
            for group in (*GROUPS, "webhooks"):
                ends = []
                for topic in {t for e in topology.consumers[group].subscribes
                              for t in [topology.events[e].topic]}:
                    meta = probe.list_topics(topic, timeout=10).topics[topic]
                    for partition in meta.partitions:
                        high = _end_offset(probe, TopicPartition(topic, partition))
                        ends.append(TopicPartition(topic, partition, high))
                futures = admin.alter_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group, ends)])
                for future in futures.values():
                    future.result(timeout=10)
        finally:
            probe.close()

    def service(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        principal: dict[str, str] = {}
        if self.security is not None and name in self.security.users:
            principal = self.security.environment(self.bootstrap, self.security.user(name))
        process = ServiceProcess(name, args, self.work / "logs" / f"{name}.log",
                                 {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                                  "TIDINGS_LOG_LEVEL": "WARNING", **principal, **(env or {})})
        process.start()
        self.processes[name] = process

    def start_services(self, topology: Topology) -> None:
        step("Starting the SMTP sink, the order service and the consumer services")
        smtp, http = free_port(), free_port()
        self.ports["smtp"], self.ports["http"] = smtp, http
        self.service("smtp-sink", ["-m", "consumers.email.smtp_sink", "--port", str(smtp),
                                   "--mailbox", str(self.work / "mailbox.db"),
                                   "--flaky-failures", "1"])
        orders_db = f"sqlite:///{self.work / 'order-service.db'}"
        self.service("order-service", ["-m", "producers.order_service"], {
            "ORDER_SERVICE_DATABASE_URL": orders_db, "ORDER_SERVICE_PORT": str(http),
            "ORDER_SERVICE_TOPOLOGY": str(REPO / "topology.yaml")})
        for group in GROUPS:
            port = free_port()
            self.ports[group] = port
            database = orders_db if group == "order-status" \
                else f"sqlite:///{self.work / f'{group}.db'}"
            self.service(group, ["-m", "tidings", "run", group, "-f",
                                 str(REPO / "topology.yaml"), "--database", database,
                                 "--metrics-port", str(port)],
                         {"EMAIL_SMTP_PORT": str(smtp)})
        self.ports["scheduler"] = free_port()
        self.service("scheduler", ["-m", "tidings", "run", "scheduler", "-f",
                                   str(REPO / "topology.yaml"), "--metrics-port",
                                   str(self.ports["scheduler"]), "--instance-id", "demo"])
        self.ports["webhooks"], self.ports["webhooks-metrics"] = free_port(), free_port()
        self.service("webhooks", ["-m", "consumers.webhooks", "-f", str(REPO / "topology.yaml"),
                                  "--database", f"sqlite:///{self.work / 'webhooks.db'}",
                                  "--api-port", str(self.ports["webhooks"]),
                                  "--metrics-port", str(self.ports["webhooks-metrics"])])
        for name, port in self.ports.items():
            if not wait_for_port(port, 60):
                process = self.processes.get(name.removesuffix("-metrics")) \
                    or self.processes["smtp-sink"]
                raise TidingsError(f"{name} did not start listening on port {port}:\n"
                                   f"{process.tail()}")
        self.timeline.start_receiver(self.ports["webhooks"])
        names = ", ".join(f"{n} (pid {p.process.pid if p.process else '?'})"
                          for n, p in self.processes.items())
        print(f"running: {names}\nlogs in {self.work / 'logs'}")

    def place_orders(self, topology: Topology) -> Scenario:
        stock = load_stock_file(DEFAULT_STOCK_FILE)
        scenario = plan(self.args.orders, stock, seed=self.args.seed)
        step(f"Placing {len(scenario.orders)} orders over HTTP "
             f"({scenario.flaky} with a flaky mail server, {scenario.bounces} that bounce)")
        base = f"http://127.0.0.1:{self.ports['http']}"
        timeline = self.timeline
        with httpx.Client(base_url=base, timeout=30) as client:
            for index, order in enumerate(scenario.orders):
                body = order.body
                if timeline.wants_callback(index):  # the outcome goes to the receiver too
                    body = {**body, "callback_url": timeline.callback_url()}
                response = client.post("/orders", json=body)
                if response.status_code != 202:
                    raise TidingsError(f"POST /orders answered {response.status_code}: "
                                       f"{response.text[:200]}")
                scenario.order_ids.append(response.json()["order_id"])
                if timeline.wants_callback(index):
                    timeline.callback_orders.append(scenario.order_ids[-1])
                if (index + 1) % 250 == 0:
                    print(f"  {index + 1} orders accepted", flush=True)
            for order_id in scenario.order_ids[::scenario.cancel_every]:
                response = client.post(f"/orders/{order_id}/cancel",
                                       json={"reason": "changed my mind"})
                if response.status_code != 202:
                    raise TidingsError(f"cancel answered {response.status_code}")
                scenario.cancelled.append(order_id)
            print(f"  {len(scenario.cancelled)} orders cancelled, "
                  f"{len(timeline.callback_orders)} with a callback_url")
            plain = [scenario.order_ids[i] for i, o in enumerate(scenario.orders)
                     if o.kind == "normal" and not timeline.wants_callback(i)
                     and scenario.order_ids[i] not in scenario.cancelled]
            timeline.schedule_reminders(client, plain[1::7])
        orders_topic = topology.events["order.created"].topic
        self.inject_duplicates(scenario, orders_topic)
        self.inject_poison(scenario, orders_topic)
        return scenario

    def inject_duplicates(self, scenario: Scenario, topic: str) -> None:
        """Re-send a few order.created records byte for byte, as a redelivery would."""
        wanted = {scenario.order_ids[i].encode() for i, o in enumerate(scenario.orders)
                  if o.kind == "normal" and scenario.order_ids[i] not in scenario.cancelled}
        wanted = set(sorted(wanted)[:scenario.duplicates])
        consumer = Consumer(self.client(**{"group.id": "demo-reader", "enable.auto.commit": False,
                                           "auto.offset.reset": "earliest"}))
        producer = Producer(self.client(**{"enable.idempotence": True}))
        found, target = 0, len(wanted)
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 60
            while found < target and time.monotonic() < deadline:
                for message in consumer.consume(500, timeout=0.5):
                    headers = dict(message.headers() or [])
                    if message.error() is None and message.key() in wanted \
                            and headers.get("event-type") == b"order.created":
                        producer.produce(topic, key=message.key(), value=message.value(),
                                         headers=message.headers())
                        wanted.discard(message.key() or b"")
                        found += 1
            producer.flush(30)
        finally:
            consumer.close()
        scenario.duplicates = found
        print(f"  {found} order.created events delivered a second time (same event-id)")

    def inject_poison(self, scenario: Scenario, topic: str) -> None:
        producer = Producer(self.client())
        for index in range(scenario.poison):
            producer.produce(topic, key=f"poison-{index}".encode(),
                             value=b"\x00this is not an event " + bytes([index]),
                             headers=[("event-id", f"poison-{index}".encode())])
        producer.flush(30)
        print(f"  {scenario.poison} poison messages written raw to '{topic}'")

    # -- waiting and checking ----------------------------------------------------------

    def expected(self, s: Scenario) -> dict[str, GroupCounts]:
        n, c = len(s.orders), len(s.cancelled)
        reminders = len(self.timeline.reminded)
        return {
            "inventory": GroupCounts(n + c + self.stock_queries, s.duplicates, 0, s.poison),
            "email": GroupCounts(n - s.bounces + reminders, s.duplicates, s.flaky,
                                 s.poison + s.bounces),
            "analytics": GroupCounts(n + c, s.duplicates, 0, s.poison),
            "order-status": GroupCounts(n, 0, 0, 0),
        }

    def wait_until_caught_up(self, scenario: Scenario, *, quiet: bool = False
                             ) -> dict[str, GroupCounts]:
        if not quiet:
            step("Waiting for every group to catch up (email retries wait out a 30s tier)")
        expected = self.expected(scenario)
        mails_expected = len(scenario.orders) - scenario.bounces + len(self.timeline.reminded)
        began = time.monotonic()
        counts: dict[str, GroupCounts] = {}
        last_print = 0.0
        while True:
            counts = {group: scrape(self.ports[group]) for group in GROUPS}
            mails = len(message_ids(self.work / "mailbox.db"))
            waiting = [
                f"{g} {what}" for g in GROUPS for what, unmet in (
                    ("events", counts[g].processed < expected[g].processed),
                    ("dead letters", counts[g].dead_lettered < expected[g].dead_lettered),
                    ("duplicates", counts[g].duplicates < expected[g].duplicates),
                    (f"{counts[g].in_flight} in flight", counts[g].in_flight > 0),
                ) if unmet
            ] + (["mails"] if mails < mails_expected else []) + self.timeline.waiting()
            done = not waiting
            elapsed = time.monotonic() - began
            if not quiet and (done or elapsed - last_print >= 3):
                line = " | ".join(f"{g} {counts[g].processed}/{expected[g].processed}"
                                  for g in GROUPS)
                print(f"  [{elapsed:4.0f}s] {line} | mails {mails}/{mails_expected}"
                      + (f"  (waiting: {', '.join(waiting[:3])})" if waiting else ""),
                      flush=True)
                last_print = elapsed
            dead = [n for n, p in self.processes.items() if not p.alive()]
            if dead:
                raise TidingsError(f"{dead[0]} exited:\n{self.processes[dead[0]].tail()}")
            if done or elapsed > self.args.timeout:
                break
            time.sleep(1)
        time.sleep(2)  # a stray extra delivery would show up in the final numbers
        return {group: scrape(self.ports[group]) for group in GROUPS}

    def ask_inventory(self, scenario: Scenario) -> dict[str, GroupCounts]:
        """Request-reply, once everything is settled: GET /stock/<sku> for every SKU
        (the order service asks inventory over Kafka); then the final numbers."""
        step("Asking inventory for its stock over request-reply (GET /stock/<sku>)")
        skus = sorted(load_stock_file(DEFAULT_STOCK_FILE))
        with httpx.Client(base_url=f"http://127.0.0.1:{self.ports['http']}",
                          timeout=30) as client:
            self.timeline.ask_stock(client, skus)
        self.stock_queries = len(skus)
        print(f"  {len(skus)} answers")
        return self.wait_until_caught_up(scenario, quiet=True)

    def summarize(self, s: Scenario, counts: dict[str, GroupCounts]) -> bool:
        step("Summary")
        failures: list[str] = []

        def check(ok: bool, what: str) -> None:
            if not ok:
                failures.append(what)

        expected = self.expected(s)
        print(f"{'group':<13}{'processed':>10}{'duplicates':>12}{'retried':>9}"
              f"{'dead-lettered':>15}  expected")
        for group in GROUPS:
            got, want = counts[group], expected[group]
            fields = ("processed", "duplicates", "retried", "dead_lettered")
            # order-status may see an inventory event twice (outbox relay, at-least-once);
            # that shows as a skipped duplicate, never as a second effect.
            compared = fields if group != "order-status" else ("processed", "retried",
                                                               "dead_lettered")
            matches = all(getattr(got, f) == getattr(want, f) for f in compared)
            check(matches, f"{group}: got {got.line()}, expected {want.line()}")
            print(f"{group:<13}{got.processed:>10}{got.duplicates:>12}{got.retried:>9}"
                  f"{got.dead_lettered:>15}  {'ok' if matches else want.line()}")

        statuses, held = self.order_statuses(s)
        n, c = len(s.orders), len(s.cancelled)
        print(f"\norders: {n} placed, {c} cancelled, {statuses['reserved']} reserved, "
              f"{statuses['rejected']} rejected (out of stock), {statuses['pending']} pending")
        check(statuses["cancelled"] == c, f"{statuses['cancelled']} cancelled, expected {c}")
        check(statuses["pending"] == 0, f"{statuses['pending']} orders still pending")
        check(statuses["reserved"] + statuses["rejected"] == n - c,
              "every order not cancelled must be reserved or rejected")

        ids = message_ids(self.work / "mailbox.db")
        twice = sum(n - 1 for n in Counter(ids).values() if n > 1)
        confirmations = len(set(ids)) - len(self.timeline.reminder_mails())
        print(f"mails: {confirmations} confirmations received, {twice} sent twice, "
              f"{s.bounces} bounced (in email's DLQ), {s.flaky} delivered after a transient "
              "failure")
        check(confirmations == n - s.bounces,
              f"{confirmations} confirmations, expected {n - s.bounces}")
        check(twice == 0, f"{twice} mails were sent twice")

        report = analytics_report(open_database(f"sqlite:///{self.work / 'analytics.db'}"))
        revenue = report.revenue_cents.get("EUR", 0)
        placed = sum(o.total_cents for o in s.orders)
        print(f"revenue: EUR {revenue / 100:,.2f} over {report.orders} orders "
              f"({report.cancellations} cancellations) in {report.minutes} minute bucket(s)")
        check(report.orders == n and revenue == placed,
              f"analytics counted {report.orders} orders / {revenue} cents, expected {n} / "
              f"{placed}")
        check(report.cancellations == c, f"analytics counted {report.cancellations} cancels")

        stock = load_stock_file(DEFAULT_STOCK_FILE)
        on_hand = inventory_report(open_database(f"sqlite:///{self.work / 'inventory.db'}")
                                   ).on_hand
        print(f"\n{'SKU':<20}{'initial':>8}{'on hand':>9}{'held by orders':>16}")
        for sku in sorted(stock):
            left = on_hand.get(sku, 0)
            conserved = stock[sku] - left == held.get(sku, 0) and left >= 0
            check(conserved, f"{sku}: {stock[sku]} - {left} != {held.get(sku, 0)} held")
            mark = "" if conserved else "  <- does not add up"
            print(f"{sku:<20}{stock[sku]:>8}{left:>9}{held.get(sku, 0):>16}{mark}")

        self.timeline.summarize(
            check, bootstrap=self.bootstrap, reports_topic="reports",
            statuses=self.callback_statuses(), on_hand={sku: on_hand.get(sku, 0)
                                                        for sku in stock},
            scheduler_port=self.ports["scheduler"])
        if failures:
            print("\nMismatches:\n  " + "\n  ".join(failures))
        return not failures

    def order_statuses(self, s: Scenario) -> tuple[Counter[str], Counter[str]]:
        statuses: Counter[str] = Counter({"reserved": 0, "rejected": 0, "pending": 0,
                                          "cancelled": 0})
        held: Counter[str] = Counter()
        base = f"http://127.0.0.1:{self.ports['http']}"
        with httpx.Client(base_url=base, timeout=30) as client:
            for order_id in s.order_ids:
                order: dict[str, Any] = client.get(f"/orders/{order_id}").json()
                statuses[order["status"]] += 1
                if order["status"] == "reserved":
                    for item in order["items"]:
                        held[item["sku"]] += item["quantity"]
        return statuses, held

    def callback_statuses(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.ports['http']}"
        with httpx.Client(base_url=base, timeout=30) as client:
            return {order_id: client.get(f"/orders/{order_id}").json()["status"]
                    for order_id in self.timeline.callback_orders}

    def stop_everything(self) -> None:
        if self.processes:
            step("Stopping the services")
        for name, process in reversed(list(self.processes.items())):
            code = process.stop()
            if code not in (0, None, -15):
                print(f"  {name} exited with {code}; see {process.log}")
        if self.cluster is not None and self.started_broker and not (
                self.args.keep_running or self.args.keep):
            step("Stopping the local Kafka broker")
            self.cluster.down()


if __name__ == "__main__":
    sys.exit(main())

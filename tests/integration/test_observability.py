"""Alerts and dashboard against a live consumer group with a failing handler.

One group runs for the module, publishing successes, a duplicate, retries and dead
letters; the order service publishes to it through its outbox, and a publisher with no
broker to reach fails. The metrics named in ops/prometheus/tidings-rules.yml and in every
query of ops/grafana/tidings.json must be among what they export; a real Prometheus
(started once, stopped by PID) scrapes the group with the real rules and must see
TidingsDeadLetters fire.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from runtime_support import Group, make_group, running
from shop_support import an_order, eventually

from ops.demo.processes import free_port
from producers.order_service.app import create_app
from producers.order_service.settings import OrderServiceSettings
from tidings.consumer.runtime import ConsumerRuntime
from tidings.producer.publisher import Publisher, PublishFailed

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "ops" / "prometheus" / "tidings-rules.yml"
DASHBOARD = REPO / "ops" / "grafana" / "tidings.json"
METRIC = re.compile(r"\b(tidings_[a-z_]+)\b")


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())
    except OSError:
        return ""


def exported_names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]
              if isinstance(v.get("query"), dict)]
    return exprs


@pytest.fixture(scope="module")
def failing_group(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
                  ) -> Iterator[tuple[Group, ConsumerRuntime, int]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path_factory.mktemp("observed"))
    try:
        with running(group.runtime(metrics_port=0)) as runtime:
            port = eventually(lambda: runtime.metrics_port, 10, "the metrics endpoint")
            with Publisher(group.topology, "order-service") as publisher:
                order = an_order()
                publisher.publish(order, event_id="dup-1")
                publisher.publish(order, event_id="dup-1")  # a duplicate, skipped
                publisher.publish_many([an_order(customer_id="fail-twice"),  # two retries
                                        an_order(customer_id="non-retryable")])  # to the DLQ
            names = ("tidings_events_duplicates_skipped_total", "tidings_events_retried_total",
                     "tidings_events_dead_lettered_total", "tidings_consumer_lag",
                     "tidings_group_members")
            eventually(lambda: all(n in exported_names(scrape(port)) for n in names) and
                       len(group.effects()) == 2, 60,
                       "every kind of outcome to show up in /metrics")
            yield group, runtime, port
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def producers(failing_group: tuple[Group, ConsumerRuntime, int],
              tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The order service's /metrics once its relay published an order, and those of a
    Publisher given a registry whose publish failed (no broker listens where it sends)."""
    group, _, _ = failing_group
    settings = OrderServiceSettings(
        database_url=f"sqlite:///{tmp_path_factory.mktemp('orders') / 'orders.db'}",
        topology=group.topology.path)
    with TestClient(create_app(settings, group.topology)) as client:
        order = {"customer_id": "c-observed", "customer_email": "ada@example.com",
                 "currency": "EUR",
                 "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 100}]}
        assert client.post("/orders", json=order).status_code == 202
        service = eventually(lambda: (lambda text: text if "tidings_events_published_total{"
                                      in text else None)(client.get("/metrics").text),
                             30, "the order service to count the relayed order")
    registry = CollectorRegistry()
    publisher = Publisher(group.topology, "order-service", registry=registry,
                          delivery_timeout=1, producer_config={"bootstrap.servers": "127.0.0.1:9"})
    with pytest.raises(PublishFailed):
        publisher.publish_many([an_order()])
    publisher.close()
    return service, generate_latest(registry).decode()


def test_every_metric_the_rules_and_dashboard_name_is_exported(
        failing_group: tuple[Group, ConsumerRuntime, int], producers: tuple[str, str]) -> None:
    group, _, port = failing_group
    text = scrape(port)
    service, failed = producers
    exported = exported_names(text) | exported_names(service) | exported_names(failed)
    named = {m for expr in [*rule_expressions(), *dashboard_expressions()]
             for m in METRIC.findall(expr)}
    assert len(named) >= 10
    assert named - exported == set(), f"named but not exported: {sorted(named - exported)}"
    assert f'tidings_group_members{{group="{group.name}"}} 1.0' in text
    assert f'tidings_handler_oldest_seconds{{group="{group.name}"}}' in text
    assert (f'tidings_events_published_total{{event_type="order.created",'
            f'producer="order-service",topic="{group.topic}"}} 1.0') in service
    assert 'tidings_outbox_pending{producer="order-service"} 0.0' in service
    assert 'tidings_publish_seconds_count{producer="order-service"} 1.0' in service
    assert 'tidings_publish_failures_total{error="msg_timed_out",producer="order-service"} 1.0' \
        in failed
    print(f"\n{len(named)} metric names in the rules and dashboard, all exported")


@pytest.fixture(scope="module")
def prometheus(failing_group: tuple[Group, ConsumerRuntime, int],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; "
                    "ops/tools/install-prometheus.sh does it)")
    _, _, port = failing_group
    work = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "tidings",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }))
    web = free_port()
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{web}"
    try:
        eventually(lambda: _get(f"{url}/-/ready") is not None or process.poll() is not None,
                   60, "Prometheus to be ready")
        assert process.poll() is None, (work / "prometheus.log").read_text()[-2000:]
        yield url
    finally:
        process.terminate()  # ours, by PID
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = reply.read().decode()
    except OSError:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def test_prometheus_fires_the_dead_letter_alert(
        failing_group: tuple[Group, ConsumerRuntime, int], prometheus: str) -> None:
    group, _, _ = failing_group

    def firing() -> list[dict[str, Any]]:
        answer = _get(f"{prometheus}/api/v1/alerts") or {}
        return [a for a in answer.get("data", {}).get("alerts", [])
                if a["labels"].get("alertname") == "TidingsDeadLetters"
                and a["state"] == "firing" and a["labels"].get("group") == group.name]

    (alert,) = eventually(firing, 90, "TidingsDeadLetters to fire")
    assert alert["labels"]["error_class"] == "tidings.consumer.context.NonRetryableError"
    assert alert["labels"]["severity"] == "warning"
    assert f"tidings dlq show --group {group.name}" in alert["annotations"]["description"]
    rules = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert {r["health"] for g in rules for r in g["rules"]} == {"ok"}, rules


def test_every_dashboard_query_runs_on_prometheus(
        failing_group: tuple[Group, ConsumerRuntime, int], prometheus: str) -> None:
    group, _, _ = failing_group
    for expr in dashboard_expressions():
        if expr.startswith("label_values("):
            query = "group(tidings_events_consumed_total) by (group)"
        else:
            query = expr.replace("$__rate_interval", "1m").replace("$group", group.name)
        answer = _get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        assert isinstance(answer, dict) and answer.get("status") == "success", (query, answer)


def lag_series(text: str) -> set[tuple[str, int]]:
    found = set()
    for line in text.splitlines():
        if line.startswith("tidings_consumer_lag{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            found.add((labels["topic"], int(labels["partition"])))
    return found


def test_a_partition_that_moves_to_another_member_stops_reporting_lag_here(
        tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    group = make_group(tmp_path)  # 3 partitions
    with running(group.runtime(metrics_port=0, commit_interval=0.2)) as first:
        port = eventually(lambda: first.metrics_port, 10, "the metrics endpoint")
        with Publisher(group.topology, "order-service") as publisher:
            publisher.publish_many([an_order() for _ in range(30)])
        everywhere = {(group.topic, p) for p in range(3)}
        eventually(lambda: lag_series(scrape(port)) >= everywhere, 30,
                   "lag of all three partitions")
        with running(group.runtime(commit_interval=0.2)) as second:
            def moved() -> bool:
                mine = {tp for tp in first.assigned if tp[0] == group.topic}
                theirs = {tp for tp in second.assigned if tp[0] == group.topic}
                reported = lag_series(scrape(port))
                return bool(mine and theirs) and reported <= first.assigned \
                    and not reported & theirs
            eventually(moved, 60, "the first member to report only the lag it still owns")

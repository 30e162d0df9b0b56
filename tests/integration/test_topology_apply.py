"""`tidings topology plan/apply` against a real Kafka broker."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tidings.cli import main

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

TEMPLATE = """\
name: {name}
defaults:
  partitions: 2
  replication_factor: 1
topics:
  {p}orders:
    partitions: {orders_partitions}
    config:
      retention.ms: {retention}
{extra_topic}events:
  order.created: {{topic: {p}orders, schema: schemas/order.created.v1.avsc, key: order_id}}
consumers:
  {p}inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [1s, 5s]
"""


class Workspace:
    def __init__(self, root: Path, bootstrap: str) -> None:
        self.root = root
        self.prefix = f"t{uuid.uuid4().hex[:8]}-"
        self.name = f"it-{self.prefix}"
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        (root / "schemas").mkdir()
        shutil.copy(REPO / "schemas" / "order.created.v1.avsc", root / "schemas")
        self.file = root / "topology.yaml"

    def write(self, orders_partitions: int = 3, retention: str = "1d",
              with_payments: bool = False) -> None:
        extra = (f"  {self.prefix}payments:\n    partitions: 1\n" if with_payments else "")
        self.file.write_text(TEMPLATE.format(
            name=self.name, p=self.prefix, orders_partitions=orders_partitions,
            retention=retention, extra_topic=extra))

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def live_topics(self) -> dict[str, int]:
        topics = self.admin.list_topics(timeout=10).topics
        return {name: len(meta.partitions) for name, meta in topics.items()
                if name.startswith(self.prefix)}

    def config_of(self, topic: str, key: str) -> str:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        entries = self.admin.describe_configs([resource])[resource].result(timeout=10)
        return str(entries[key].value)


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def ws(tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    return Workspace(tmp_path, kafka_bootstrap)


@pytest.fixture
def run(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> Run:
    def _run(*args: str) -> tuple[int, str, str]:
        code = main(["topology", *args, "-f", str(ws.file)])
        out, err = capsys.readouterr()
        return code, out, err
    return _run


def test_apply_creates_every_implied_topic_and_a_second_apply_finds_nothing(
    ws: Workspace, run: Run
) -> None:
    ws.write()
    code, out, _ = run("apply", "--yes")
    assert code == 0, out
    assert ws.live_topics() == {
        ws.topic("orders"): 3,
        ws.topic("orders.") + ws.topic("inventory.retry.1s"): 3,
        ws.topic("orders.") + ws.topic("inventory.retry.5s"): 3,
        ws.topic("orders.") + ws.topic("inventory.dlq"): 3,
        ws.topic("orders.") + ws.topic("inventory.replay"): 3,
    }
    for topic in ws.live_topics():
        assert ws.config_of(topic, "retention.ms") == "86400000"

    code, out, _ = run("plan")
    assert code == 0
    assert "No changes" in out

    code, out, _ = run("apply", "--yes")
    assert code == 0
    assert "No changes" in out and "Applied" not in out


def test_plan_grades_changes_and_apply_makes_exactly_them(ws: Workspace, run: Run) -> None:
    ws.write()
    assert run("apply", "--yes")[0] == 0
    ws.write(orders_partitions=4, retention="2d")

    code, out, _ = run("plan", "--json")
    assert code == 0
    plan = json.loads(out)
    grades = {(c["kind"], c["topic"]): c["grade"] for c in plan["changes"]}
    assert grades[("add-partitions", ws.topic("orders"))] == "caution"
    assert grades[("set-config", ws.topic("orders"))] == "safe"
    assert plan["summary"]["refused"] == 0
    assert len(plan["changes"]) == 10  # 5 topics x (partitions + retention)

    assert run("apply", "--yes")[0] == 0
    assert set(ws.live_topics().values()) == {4}
    assert ws.config_of(ws.topic("orders"), "retention.ms") == str(2 * 86_400_000)
    assert "No changes" in run("plan")[1]


def test_partition_decrease_is_refused_and_nothing_changes(ws: Workspace, run: Run) -> None:
    ws.write(orders_partitions=3)
    assert run("apply", "--yes")[0] == 0
    ws.write(orders_partitions=2, retention="2d")

    code, out, _ = run("plan")
    assert code == 1
    assert "topology.yaml:7: " in out and "cannot remove partitions" in out

    code, _, err = run("apply", "--yes")
    assert code == 1
    assert "nothing applied" in err
    assert set(ws.live_topics().values()) == {3}
    assert ws.config_of(ws.topic("orders"), "retention.ms") == "86400000"


def test_deleting_a_topic_needs_allow_destructive_and_spares_foreign_topics(
    ws: Workspace, run: Run
) -> None:
    ws.write(with_payments=True)
    assert run("apply", "--yes")[0] == 0
    foreign = ws.topic("someone-elses")
    ws.admin.create_topics([NewTopic(foreign, 1, 1)])[foreign].result(timeout=10)
    ws.write(with_payments=False)

    code, out, err = run("apply", "--yes")
    assert code == 1
    assert f"delete topic {ws.topic('payments')}  [destructive]" in out
    assert "--allow-destructive" in err
    assert ws.topic("payments") in ws.live_topics()

    code, out, _ = run("apply", "--yes", "--allow-destructive")
    assert code == 0, out
    topics = ws.live_topics()
    assert ws.topic("payments") not in topics
    assert foreign in topics, "a topic this topology never created must not be deleted"
    assert "No changes" in run("plan")[1]


def test_replication_larger_than_the_cluster_names_the_line(ws: Workspace, run: Run) -> None:
    ws.write()
    ws.file.write_text(ws.file.read_text().replace("replication_factor: 1",
                                                   "replication_factor: 5"))
    code, _, err = run("plan")
    assert code == 1
    assert "topology.yaml:4: topic" in err and "replication factor 5 is larger than the cluster" \
        in err
    assert ws.live_topics() == {}

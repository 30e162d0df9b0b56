"""The local Kafka launcher: a 3-broker cluster, persistence across restarts, the CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tidings.kafka_local import LocalCluster
from tidings.kafka_local.ports import find_free_base_port
from tidings.testing import local_cluster, local_kafka

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _create_topic(admin: AdminClient, topic: NewTopic) -> None:
    for future in admin.create_topics([topic], operation_timeout=30).values():
        future.result(timeout=60)


def test_three_brokers_replicate_with_min_isr(tmp_path: Path) -> None:
    with local_cluster(3) as bootstrap:
        assert len(bootstrap.split(",")) == 3
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert len(admin.list_topics(timeout=10).brokers) == 3
        name = f"replicated-{uuid.uuid4().hex[:8]}"
        _create_topic(
            admin,
            NewTopic(
                name,
                num_partitions=3,
                replication_factor=3,
                config={"min.insync.replicas": "2"},
            ),
        )

        deadline = time.monotonic() + 30
        while True:
            partitions = admin.list_topics(name, timeout=10).topics[name].partitions
            if len(partitions) == 3 and all(len(p.isrs) == 3 for p in partitions.values()):
                break
            assert time.monotonic() < deadline, f"ISR never reached 3: {partitions}"
            time.sleep(0.2)
        for partition in partitions.values():
            assert sorted(partition.replicas) == [1, 2, 3]

        # The broker answering may not know the topic for a moment after its creation.
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        while True:
            try:
                configs = admin.describe_configs([resource])[resource].result(timeout=30)
                break
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
                assert time.monotonic() < deadline + 30, "configs never became readable"
                time.sleep(0.2)
        assert configs["min.insync.replicas"].value == "2"

        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce(name, key=b"k", value=b"replicated")
        assert producer.flush(30) == 0


def _consume_one(bootstrap: str, topic: str, timeout: float = 30) -> bytes | None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                value: bytes | None = msg.value()
                return value
        return None
    finally:
        consumer.close()


def test_data_survives_down_and_up() -> None:
    with local_kafka(1) as cluster:
        bootstrap = cluster.bootstrap
        topic = f"durable-{uuid.uuid4().hex[:8]}"
        _create_topic(AdminClient({"bootstrap.servers": bootstrap}), NewTopic(topic, 1, 1))
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce(topic, value=b"still here")
        assert producer.flush(30) == 0

        cluster.down()
        assert not cluster.status().running
        cluster.down()  # twice is harmless

        assert cluster.up() == bootstrap
        assert cluster.up() == bootstrap  # idempotent while running
        assert _consume_one(bootstrap, topic) == b"still here"


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env["TIDINGS_STATE_DIR"] = str(tmp_path / "state")
    env["XDG_STATE_HOME"] = str(tmp_path / "user-state")  # the pointer `dev up` leaves
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    yield env
    # Whatever happened in the test, no broker may outlive it.
    LocalCluster(tmp_path / "state" / "dev").down()


def _tidings(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_cli_up_status_down(cli_env: dict[str, str]) -> None:
    if not (REPO / "tidings" / "cli" / "topology_cmd.py").exists():
        pytest.skip("tidings.cli.topology_cmd is not written yet; `python -m tidings` needs it")
    base = find_free_base_port(2)

    up = _tidings(cli_env, "dev", "up", "--port", str(base))
    assert up.returncode == 0, up.stderr
    assert up.stdout.splitlines()[-1] == f"127.0.0.1:{base}"

    status = _tidings(cli_env, "dev", "status")
    assert status.returncode == 0, status.stderr
    assert f"port {base}" in status.stdout and "alive" in status.stdout

    again = _tidings(cli_env, "dev", "up")  # reuses the recorded port; already running
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == f"127.0.0.1:{base}"

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = dict(cli_env, TIDINGS_STATE_DIR=cli_env["TIDINGS_STATE_DIR"] + "-other")
        clash = _tidings(other, "dev", "up", "--port", str(port))
    assert clash.returncode == 1
    assert clash.stderr.strip() == (
        f"tidings: port {port} is already in use (another Kafka?); "
        "run `tidings dev down` or choose --port"
    )

    down = _tidings(cli_env, "dev", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    status = _tidings(cli_env, "dev", "status")
    assert "no local Kafka running" in status.stdout
    assert status.returncode == 3, "a status command says 'not running' in its exit code"
    assert _tidings(cli_env, "dev", "down").returncode == 0


ORDER = ('{"order_id": "o-1", "customer_id": "c-1", "customer_email": "a@example.com", '
         '"currency": "EUR", "items": [{"sku": "S", "quantity": 1, "unit_price_cents": 100}], '
         '"total_cents": 100, "created_at": "2026-11-23T01:02:03Z"}')


def test_every_command_finds_the_dev_cluster_from_any_folder_and_says_so_when_none_runs(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    base = find_free_base_port(2)
    up = _tidings(cli_env, "dev", "up", "--port", str(base))
    assert up.returncode == 0, up.stderr
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "topology.yaml", project)
    shutil.copytree(REPO / "schemas", project / "schemas")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    # No TIDINGS_STATE_DIR, no KAFKA_BOOTSTRAP_SERVERS, another working directory.
    anywhere = {k: v for k, v in cli_env.items() if k != "TIDINGS_STATE_DIR"}
    topology = str(project / "topology.yaml")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tidings", *args], env=anywhere,
                              cwd=elsewhere, capture_output=True, text=True, timeout=180,
                              check=False)

    applied = run("topology", "apply", "--yes", "-f", topology)
    assert applied.returncode == 0, applied.stderr
    published = run("publish", "order.created", "--data", ORDER, "-f", topology)
    assert published.returncode == 0, published.stderr
    assert published.stdout.startswith("orders/")
    listed = run("dlq", "list", "-f", topology)
    assert listed.returncode == 0, listed.stderr

    assert _tidings(cli_env, "dev", "down").returncode == 0
    for args in (["dlq", "list"], ["topology", "plan"], ["replay", "--group", "analytics",
                                                          "--topic", "orders", "--from", "-1h"]):
        result = run(*args, "-f", topology)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "no Kafka broker answered" in result.stderr

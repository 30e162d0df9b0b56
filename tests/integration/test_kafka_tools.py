"""Kafka's own tools next to the local cluster, and `tidings dev up --registry`.

The first test runs the exact command lines ops/kafka/README.md gives operators,
changing only the broker address and the group name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tidings.errors import TidingsError
from tidings.kafka_local import LocalCluster
from tidings.kafka_local.ports import find_free_base_port
from tidings.kafka_local.registry import LocalRegistry, RegistryNotInstallable, choose_runtime
from tidings.kafka_local.tools import write_tool_scripts

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
README_COMMAND = re.compile(r"^    (\.tidings/dev/bin/kafka-\S+ .*)$", re.MULTILINE)


def readme_commands() -> list[str]:
    return README_COMMAND.findall((REPO / "ops" / "kafka" / "README.md").read_text())


def _group_with_offsets(bootstrap: str, topic: str, group: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in range(4):
        producer.produce(topic, key=f"k{n}".encode(), value=b"v")
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        got = 0
        for _ in range(60):
            got += len([m for m in consumer.consume(10, timeout=0.5) if m.error() is None])
            if got >= 4:
                break
        assert got == 4
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def test_the_readme_commands_list_and_describe_a_consumer_group(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    commands = readme_commands()
    assert [c.split()[0] for c in commands] == [
        ".tidings/dev/bin/kafka-topics", ".tidings/dev/bin/kafka-consumer-groups",
        ".tidings/dev/bin/kafka-consumer-groups"]
    try:
        write_tool_scripts(tmp_path / ".tidings" / "dev" / "bin")
    except TidingsError as exc:
        pytest.skip(f"Kafka's command-line tools are unavailable: {exc}")
    topic, group = f"tools-{uuid.uuid4().hex[:8]}", f"tools-group-{uuid.uuid4().hex[:8]}"
    _group_with_offsets(kafka_bootstrap, topic, group)

    outputs = []
    for command in commands:
        line = command.replace("127.0.0.1:19092", kafka_bootstrap).replace(
            "--group inventory", f"--group {group}")
        run = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, check=False)
        assert run.returncode == 0, f"{line}\n{run.stderr}"
        outputs.append(run.stdout)
    topics, groups, described = outputs
    assert topic in topics.split()
    assert group in groups.split()
    rows = [line.split() for line in described.splitlines() if line.startswith(group)]
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    assert rows and {(row[1], row[5]) for row in rows} == {(topic, "0")}
    assert sum(int(row[3]) for row in rows) == 4, described


@pytest.fixture
def dev_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env["TIDINGS_STATE_DIR"] = str(tmp_path / "state")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    yield env
    # Whatever happened in the test, nothing it started may outlive it.
    LocalRegistry(tmp_path / "state" / "dev").down()
    LocalCluster(tmp_path / "state" / "dev").down()


def _tidings(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)


def test_dev_up_with_a_registry_prints_its_url_and_down_stops_it(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    try:
        choose_runtime()
    except RegistryNotInstallable as exc:
        pytest.skip(f"schema registry unavailable: {exc}")
    base, registry_port = find_free_base_port(2), find_free_base_port(2)
    up = _tidings(dev_env, "dev", "up", "--port", str(base), "--registry",
                  "--registry-port", str(registry_port))
    assert up.returncode == 0, up.stderr
    lines = up.stdout.splitlines()
    url = f"http://127.0.0.1:{registry_port}/apis/ccompat/v7"
    assert lines[-1] == f"127.0.0.1:{base}"
    assert lines[-3] == url, up.stdout
    state = tmp_path / "state" / "dev"
    assert f"{state / 'bin'}/kafka-consumer-groups --bootstrap-server 127.0.0.1:{base} --list" \
        in up.stdout
    with urllib.request.urlopen(f"{url}/subjects", timeout=10) as answer:
        assert answer.status == 200

    status = _tidings(dev_env, "dev", "status")
    assert status.returncode == 0, status.stderr
    registry = LocalRegistry(state, port=registry_port)
    pid = registry.live_pid()
    assert pid is not None
    assert f"at {url}: pid {pid}  alive" in status.stdout

    down = _tidings(dev_env, "dev", "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines() == ["schema registry stopped", "local Kafka stopped"]
    assert registry.live_pid() is None
    assert not Path(f"/proc/{pid}").exists() or not registry.status().alive
    status = _tidings(dev_env, "dev", "status")
    assert f"no schema registry running (last at {url})" in status.stdout

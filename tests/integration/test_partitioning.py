"""Java-compatible partitioning: keys land where Java's producer puts them, and
`topology plan` says when the partitioner changes for topics holding events.

The expected partitions come from the real Java client: Kafka's own
kafka-console-producer (kafka-clients' KafkaProducer with its built-in partitioner,
murmur2 for keyed records), run against the session broker.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from shop_support import an_order, read_all

from tidings.cli import main
from tidings.errors import TidingsError
from tidings.kafka_local.tools import write_tool_scripts
from tidings.producer.publisher import Publisher
from tidings.producer.reliable import ReliableProducer
from tidings.topology import Topology, load_topology, sync
from tidings.topology.state import write_managed

pytestmark = pytest.mark.integration

PARTITIONS = 12
TOPOLOGY = """\
name: {name}
cluster:
{cluster}
topics:
  {p}orders: {{partitions: {partitions}, replication_factor: 1}}
events:
  order.created: {{topic: {p}orders, schema: {schemas}/order.created.v2.avsc, key: order_id}}
producers:
  order-service: {{publishes: [order.created]}}
"""
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _bootstrap(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)


@pytest.fixture(scope="module")
def kafka_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kafka's tool scripts, as `tidings dev up` writes them."""
    bin_dir = tmp_path_factory.mktemp("tools") / "bin"
    try:
        write_tool_scripts(bin_dir)
    except TidingsError as exc:
        pytest.skip(f"Kafka's command-line tools are unavailable: {exc}")
    return bin_dir


def write_topology(root: Path, prefix: str, cluster: str = "  {}") -> Topology:
    path = root / f"topology-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(TOPOLOGY.format(name=f"it-{prefix}", p=prefix, cluster=cluster,
                                    partitions=PARTITIONS, schemas=REPO / "schemas"))
    return load_topology(path, check_imports=False)


def apply(topology: Topology) -> None:
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))


def test_keys_land_where_javas_producer_puts_them(
    tmp_path: Path, kafka_bootstrap: str, kafka_bin: Path
) -> None:
    keys = ([str(uuid.UUID(int=n * 7919 + 1)) for n in range(120)]
            + [f"order-{n}" for n in range(60)]
            + ["a", "zz", "Ωμέγα-1", "注文-42", "ключ", "x" * 64])
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    java_topic = f"{prefix}java"
    created = subprocess.run(
        [str(kafka_bin / "kafka-topics"), "--bootstrap-server", kafka_bootstrap, "--create",
         "--topic", java_topic, "--partitions", str(PARTITIONS), "--replication-factor", "1"],
        capture_output=True, text=True, timeout=120, check=False)
    assert created.returncode == 0, created.stderr
    produced = subprocess.run(
        [str(kafka_bin / "kafka-console-producer"), "--bootstrap-server", kafka_bootstrap,
         "--topic", java_topic, "--property", "parse.key=true",
         "--property", "key.separator=\t"],
        input="".join(f"{key}\tfrom java\n" for key in keys).encode(),
        capture_output=True, timeout=120, check=False)
    assert produced.returncode == 0, produced.stderr.decode()
    java = {m.key(): m.partition() for m in read_all(kafka_bootstrap, java_topic,
                                                     expect=len(keys))}
    assert set(java) == {key.encode() for key in keys}

    topology = write_topology(tmp_path, prefix)
    assert topology.cluster.partitioner == "murmur2_random"  # the default
    apply(topology)
    with Publisher(topology, "order-service") as publisher:
        deliveries = publisher.publish_many([an_order(order_id=key) for key in keys])
    tidings = {key.encode(): d.partition for key, d in zip(keys, deliveries, strict=True)}
    stored = {m.key(): m.partition() for m in read_all(kafka_bootstrap, f"{prefix}orders",
                                                       expect=len(keys))}
    assert stored == tidings
    assert tidings == java

    # The comparison has teeth: librdkafka's own default (CRC32) places most keys elsewhere.
    crc_topic = f"{prefix}crc"
    producer = ReliableProducer({"bootstrap.servers": kafka_bootstrap,
                                 "partitioner": "consistent_random"})
    subprocess.run([str(kafka_bin / "kafka-topics"), "--bootstrap-server", kafka_bootstrap,
                    "--create", "--topic", crc_topic, "--partitions", str(PARTITIONS)],
                   capture_output=True, timeout=120, check=True)
    try:
        crc = {key.encode(): producer.send(crc_topic, b"crc", key=key.encode())
               .result(timeout=30).partition for key in keys}
    finally:
        producer.close()
    assert sum(crc[key] != java[key] for key in java) > len(keys) // 2


def test_plan_shows_a_partitioner_change_for_topics_holding_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    before = write_topology(tmp_path, prefix)
    apply(before)  # records murmur2_random
    with Publisher(before, "order-service") as publisher:
        publisher.publish_many([an_order() for _ in range(5)])

    after = write_topology(tmp_path, prefix, "  partitioner: consistent_random")
    plan = sync.plan(sync.connect(after))
    (change,) = plan.changes
    assert (change.kind, change.grade, change.old, change.new) == (
        "set-partitioner", "caution", "murmur2_random", "consistent_random")
    assert change.reason.startswith(f"{prefix}orders (5 events) already holds events: ")
    assert "set cluster.partitioner: murmur2_random" in change.reason

    assert main(["topology", "plan", "-f", str(after.path)]) == 0
    out = capsys.readouterr().out
    assert "  ~ partitioner: murmur2_random -> consistent_random  [caution]" in out

    # Once applied, the new choice is the recorded one and plan is quiet again.
    apply(after)
    assert sync.plan(sync.connect(after)).changes == []


def test_a_state_record_from_before_partitioners_were_recorded_means_crc32(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    topology = write_topology(tmp_path, prefix)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    # What an apply by an older Tidings wrote: the topics, no partitioner.
    write_managed(view.admin, view.config, topology.name,
                  [t.name for t in topology.desired_topics()], 1, 10.0)
    plan = sync.plan(sync.connect(topology))
    (change,) = plan.changes
    assert (change.grade, change.old, change.new) == ("safe", "consistent_random",
                                                      "murmur2_random")
    assert change.reason == "no declared topic holds events yet, so no key moves"
    events = read_all(kafka_bootstrap, f"{prefix}orders")
    assert events == []

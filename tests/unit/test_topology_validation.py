"""Every mistake in topology.yaml is reported with its line, all of them in one run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidings.topology import TopologyInvalid, load_topology

REPO = Path(__file__).resolve().parents[2]

VALID = """\
name: shop-test
defaults:
  partitions: 3
  replication_factor: 1
topics:
  orders:
    partitions: 6
    config:
      retention.ms: 1d
events:
  order.created: {topic: orders, schema: schemas/order.created.v1.avsc, key: order_id}
producers:
  shop:
    publishes: [order.created]
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s, 1m]
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "order.created.v1.avsc", tmp_path / "schemas")
    return tmp_path


def write(workdir: Path, text: str) -> Path:
    path = workdir / "topology.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path, **kwargs: object) -> list[tuple[int | None, str]]:
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(path, **kwargs)  # type: ignore[arg-type]
    return [(p.line, p.message) for p in caught.value.problems]


def test_the_valid_file_loads_with_its_derived_topics(workdir: Path) -> None:
    topology = load_topology(write(workdir, VALID))
    names = [t.name for t in topology.desired_topics()]
    assert names == [
        "orders",
        "orders.inventory.retry.10s",
        "orders.inventory.retry.1m",
        "orders.inventory.dlq",
        "orders.inventory.replay",
    ]
    orders = topology.desired_topics()[0]
    assert orders.partitions == 6
    assert orders.config == {"retention.ms": "86400000"}


def test_the_repository_topology_is_valid() -> None:
    topology = load_topology(REPO / "topology.yaml")
    assert "orders.inventory.retry.10s" in {t.name for t in topology.desired_topics()}


# (what to replace, what to put instead, expected line, expected words in the message)
INVALID = [
    pytest.param("    partitions: 6\n", "    partitons: 6\n", 7,
                 "unknown key 'partitons' in topics.orders (did you mean 'partitions'?)",
                 id="unknown-key-did-you-mean"),
    pytest.param("{topic: orders,", "{topic: order,", 11,
                 "event 'order.created' is on topic 'order', which is not declared under topics "
                 "(did you mean 'orders'?)", id="event-on-undeclared-topic"),
    pytest.param("schemas/order.created.v1.avsc", "schemas/order.created.v9.avsc", 11,
                 "schema file 'schemas/order.created.v9.avsc' does not exist",
                 id="missing-schema-file"),
    pytest.param("retry: [10s, 1m]", "retry: [10s, soon]", 19,
                 "consumers.inventory.retry.1: 'soon' is not a duration", id="bad-duration"),
    pytest.param("subscribes: [order.created]", "subscribes: [order.create]", 17,
                 "consumer 'inventory' subscribes to unknown event 'order.create' "
                 "(did you mean 'order.created'?)", id="unknown-subscription"),
    pytest.param("handler: json:dumps", "handler: no_such_pkg.handlers:handle", 18,
                 "handler 'no_such_pkg.handlers:handle' does not import: "
                 "no module named 'no_such_pkg'", id="handler-does-not-import"),
    pytest.param("handler: json:dumps", "handler: json:no_such_function", 18,
                 "module 'json' has no 'no_such_function'", id="handler-missing-function"),
    pytest.param("events:\n", "  orders:\n    partitions: 2\nevents:\n", 10,
                 "duplicate key 'topics.orders' (first at line 6)", id="duplicate-topic"),
    pytest.param("    partitions: 6\n", "    partitions: 0\n", 7,
                 "topics.orders.partitions must be at least 1 (got 0)", id="zero-partitions"),
    pytest.param("      retention.ms: 1d\n",
                 "      retention.ms: 1d\n      min.insync.replicas: 2\n", 10,
                 "min.insync.replicas=2 is more than its replication factor 1",
                 id="min-isr-above-replication"),
    pytest.param("key: order_id}", "key: order_uuid}", 11,
                 "key 'order_uuid' is not a field of schemas/order.created.v1.avsc "
                 "(did you mean 'order_id'?)", id="key-not-in-schema"),
    pytest.param("name: shop-test\n", "name: shop-test\nconsumer:\n  x: 1\n", 2,
                 "unknown key 'consumer' in top level (did you mean 'consumers'?)",
                 id="unknown-section"),
    pytest.param("retry: [10s, 1m]", "retry: [60s, 1m]", 19,
                 "retry tier 1m of 'inventory' is listed twice", id="duplicate-retry-tier"),
    pytest.param("      retention.ms: 1d\n", "      retention.mss: 1d\n", 9,
                 "unknown topic config 'retention.mss' (did you mean 'retention.ms'?)",
                 id="unknown-topic-config"),
    pytest.param("      retention.ms: 1d\n", "      retention.ms: forever\n", 9,
                 "retention.ms must be milliseconds or a duration like 14d, not 'forever'",
                 id="bad-config-value"),
    pytest.param("  orders:\n    partitions: 6", "  orders!:\n    partitions: 6", 6,
                 "topic name 'orders!' is not valid in Kafka", id="bad-topic-name"),
    pytest.param("name: shop-test\n",
                 "name: shop-test\ncluster:\n  properties:\n    sasl.password: hunter2\n", 4,
                 "sasl.password looks like a secret; secrets come from the environment "
                 "(set TIDINGS_KAFKA_SASL_PASSWORD)", id="secret-in-file"),
    pytest.param("    subscribes: [order.created]\n", "    subscribes: []\n", 17,
                 "consumers.inventory.subscribes must not be empty", id="empty-subscriptions"),
    pytest.param("  shop:\n    publishes: [order.created]\n",
                 "  shop:\n    publishes: [order.created, order.shipped]\n", 14,
                 "producer 'shop' publishes unknown event 'order.shipped'",
                 id="producer-unknown-event"),
    pytest.param("    retry: [10s, 1m]\n", "    retry: [10s, 1m]\n    dlq: maybe\n", 20,
                 "consumers.inventory.dlq: Input should be a valid boolean", id="bad-boolean"),
    pytest.param("    retry: [10s, 1m]\n", "    retry: [10s, 1m]\n    start_from: yesterday\n", 20,
                 "start_from 'yesterday': use earliest, latest or an ISO 8601 time",
                 id="bad-start-from"),
    pytest.param("    retry: [10s, 1m]\n", "    retry: [10s, 1m]\n    transaction: per-row\n", 20,
                 "consumers.inventory.transaction: Input should be 'batch' or 'event'",
                 id="bad-transaction-mode"),
    pytest.param("    retry: [10s, 1m]\n",
                 "    retry: [10s, 1m]\n    transaction: event\n    batch: {max_events: 5}\n", 16,
                 "transaction: event does not go with batch:", id="event-transactions-in-batches"),
    pytest.param("events:\n", "  orders.inventory.dlq: {}\nevents:\n", 17,
                 "topic 'orders.inventory.dlq' (dead letters of inventory) clashes with the topic "
                 "of the same name (declared)", id="derived-name-clash"),
]


@pytest.mark.parametrize(("old", "new", "line", "message"), INVALID)
def test_invalid_topology_names_the_line(
    workdir: Path, old: str, new: str, line: int, message: str
) -> None:
    assert old in VALID, "the test's anchor text must exist in the valid file"
    path = write(workdir, VALID.replace(old, new, 1))
    found = problems_of(path)
    assert any(
        found_line == line and message in text for found_line, text in found
    ), f"expected line {line}: {message!r}; got {found}"


def test_replication_larger_than_the_cluster_is_reported_when_the_size_is_known(
    workdir: Path,
) -> None:
    path = write(workdir, VALID.replace("replication_factor: 1", "replication_factor: 3"))
    assert load_topology(path)  # unknown cluster size: not an error offline
    assert problems_of(path, broker_count=1) == [
        (4, "topic 'orders': replication factor 3 is larger than the cluster (1 broker)")
    ]


def test_yaml_syntax_error_names_the_line(workdir: Path) -> None:
    path = write(workdir, VALID.replace("    partitions: 6\n", "    partitions: [6\n"))
    (line, message), = problems_of(path)
    # The line where the unclosed '[' opens, not the next key's where the parser gave up.
    assert line == 7
    assert message.startswith("YAML syntax error: this '[' is never closed")


def test_every_problem_is_reported_in_one_run(workdir: Path) -> None:
    broken = (VALID.replace("partitions: 6", "partitons: 6")
              .replace("retry: [10s, 1m]", "retry: [10s, soon]")
              .replace("subscribes: [order.created]", "subscribes: [order.shipped]")
              .replace("handler: json:dumps", "handler: nowhere:handle"))
    lines = sorted(line for line, _ in problems_of(write(workdir, broken)))
    # The bad retry tier does not hide the unknown event or the handler in the same entry.
    assert lines == [7, 17, 18, 19]


def test_cli_prints_problems_without_traceback(workdir: Path) -> None:
    path = write(workdir, VALID.replace("partitions: 6", "partitons: 6"))
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "topology", "validate", "-f", str(path)],
        capture_output=True, text=True, cwd=workdir, check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "topology.yaml:7: unknown key 'partitons'" in result.stderr
    assert result.stderr.strip().endswith("1 problem in topology.yaml")


def test_cli_validates_the_repository_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "topology", "validate"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "topology.yaml: valid" in result.stdout


@pytest.mark.parametrize(("written", "epoch_ms"), [
    ("latest", None), ("earliest", None),
    ("2026-11-01T00:00:00Z", 1793491200000),  # YAML reads this one as a datetime itself
    ('"2026-11-01T01:00:00+01:00"', 1793491200000), ("2026-11-01", 1793491200000),
])
def test_start_from_takes_earliest_latest_or_a_moment(
    workdir: Path, written: str, epoch_ms: int | None
) -> None:
    from tidings.topology.model import parse_start_from

    topology = load_topology(write(workdir, VALID.replace(
        "    retry: [10s, 1m]\n", f"    retry: [10s, 1m]\n    start_from: {written}\n")))
    assert parse_start_from(topology.consumers["inventory"].start_from) == epoch_ms


def test_a_group_starts_from_earliest_unless_told_otherwise(workdir: Path) -> None:
    assert load_topology(write(workdir, VALID)).consumers["inventory"].start_from == "earliest"

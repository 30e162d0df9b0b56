"""cluster.partitioner and the registry settings of topology.yaml, and how plan grades a
partitioner change (pure logic; the real placement is tested against Java's client)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tidings.codec import RegistryCodec, SingleObjectCodec, schema_header
from tidings.codec.registry import registry_message
from tidings.topology import TopologyInvalid, load_topology
from tidings.topology.plan import ChangeKind, ClusterState, Grade, plan_topology
from tidings.topology.topology import DesiredTopic

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, cluster: str) -> Path:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    for name in ("order.created.v1.avsc", "order.created.v2.avsc"):
        shutil.copy(REPO / "schemas" / name, tmp_path / "schemas")
    body = textwrap.indent(textwrap.dedent(cluster), "  ")
    path = tmp_path / "topology.yaml"
    path.write_text("name: t\ncluster:\n" + body.rstrip() + "\n" + textwrap.dedent("""\
        topics:
          orders: {partitions: 3}
        events:
          order.created: {topic: orders, schema: schemas/order.created.v2.avsc, key: order_id}
        producers:
          shop: {publishes: [order.created]}
        """))
    return path


def test_the_partitioner_is_java_compatible_unless_chosen(tmp_path: Path) -> None:
    default = load_topology(write(tmp_path, "{}"), check_imports=False)
    assert default.cluster.partitioner == "murmur2_random"
    assert default.cluster.client_properties == {"partitioner": "murmur2_random"}
    chosen = load_topology(write(tmp_path, """\
        partitioner: consistent_random
        properties: {linger.ms: 20}
    """), check_imports=False)
    assert chosen.cluster.client_properties == {"linger.ms": 20,
                                                "partitioner": "consistent_random"}


def test_the_repository_topology_states_its_partitioner() -> None:
    text = (REPO / "topology.yaml").read_text()
    assert "partitioner: murmur2_random" in text
    assert load_topology(REPO / "topology.yaml", check_imports=False).cluster.partitioner \
        == "murmur2_random"


def test_an_unknown_partitioner_or_one_under_properties_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(write(tmp_path, "partitioner: java"), check_imports=False)
    ((line, message),) = [(p.line, p.message) for p in caught.value.problems]
    assert line == 3 and "murmur2_random" in message
    with pytest.raises(TopologyInvalid) as caught:
        load_topology(write(tmp_path, "properties: {partitioner: murmur2}"),
                      check_imports=False)
    ((line, message),) = [(p.line, p.message) for p in caught.value.problems]
    assert line == 3
    assert message.startswith("set the partitioner as cluster.partitioner, not under properties")


def test_registry_url_from_the_environment_wins_and_auto_register_is_off_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDINGS_SCHEMA_REGISTRY_URL", raising=False)
    plain = load_topology(write(tmp_path, "{}"), check_imports=False)
    assert plain.registry_url is None
    assert isinstance(plain.codec(), SingleObjectCodec)
    in_file = load_topology(write(tmp_path, "schema_registry_url: mock://from-file"),
                            check_imports=False)
    codec = in_file.codec()
    assert isinstance(codec, RegistryCodec)
    assert (codec.url, codec.auto_register, codec.subject_strategy) == (
        "mock://from-file", False, "topic_record")
    monkeypatch.setenv("TIDINGS_SCHEMA_REGISTRY_URL", "mock://from-env")
    assert in_file.registry_url == "mock://from-env"
    assert plain.registry_url == "mock://from-env"
    monkeypatch.delenv("TIDINGS_SCHEMA_REGISTRY_URL")
    on = load_topology(write(tmp_path, """\
        schema_registry_url: mock://on
        auto_register_schemas: true
    """), check_imports=False)
    codec = on.codec()
    assert isinstance(codec, RegistryCodec) and codec.auto_register


def test_the_schema_header_is_the_fingerprint_or_the_registry_id(tmp_path: Path) -> None:
    topology = load_topology(write(tmp_path, """\
        schema_registry_url: mock://header-test
        auto_register_schemas: true
    """), check_imports=False)
    registry = topology.codec()
    assert isinstance(registry, RegistryCodec)
    catalogue = registry.catalogue
    single = SingleObjectCodec(catalogue)
    assert schema_header(single, catalogue, "order.created") == \
        catalogue.writer("order.created").fingerprint.hex()
    header = schema_header(registry, catalogue, "order.created")
    assert header.isdigit()
    assert int(header) == registry.schema_id("order.created")


def test_registry_messages_lose_the_java_exception_class() -> None:
    class Refused(Exception):
        error_message = ("io.apicurio.registry.rules.violation.RuleViolationException: "
                         "Incompatible artifact: s [AVRO], list of diff types: [reader type: "
                         "STRING not compatible with writer type: LONG at /fields/5/type]")

    assert registry_message(Refused()) == (
        "Incompatible artifact: s [AVRO], list of diff types: [reader type: STRING not "
        "compatible with writer type: LONG at /fields/5/type]")
    assert registry_message(ValueError("Schema being registered is incompatible: x")) == \
        "Schema being registered is incompatible: x"


# ------------------------------------------------------------------------------ plan

ORDERS = DesiredTopic("orders", 3, 1, {}, "declared", ("topics", "orders"))
RETRY = DesiredTopic("orders.g.retry.1s", 3, 1, {}, "retry tier 1s of g",
                     ("consumers", "g"), parent="orders")


def state(recorded: str | None, **messages: int) -> ClusterState:
    return ClusterState(brokers=1, topics={}, partitioner=recorded, messages=messages)


def test_the_same_partitioner_or_no_record_plans_nothing() -> None:
    assert plan_topology([], state("murmur2_random"), "murmur2_random").empty
    # Never applied: nothing is known about how existing events were placed.
    assert plan_topology([], state(None), "murmur2_random").empty
    assert plan_topology([], state("consistent_random")).empty  # no partitioner asked about


def test_a_new_partitioner_on_topics_holding_events_is_caution() -> None:
    plan = plan_topology([ORDERS, RETRY], state("consistent_random", orders=1204),
                         "murmur2_random")
    creates = [c for c in plan.changes if c.kind is ChangeKind.CREATE]
    (change,) = [c for c in plan.changes if c.kind is ChangeKind.SET_PARTITIONER]
    assert plan.changes[-1] is change and len(creates) == 2
    assert change.grade is Grade.CAUTION
    assert change.summary == "partitioner: consistent_random -> murmur2_random"
    assert change.reason == (
        "orders (1,204 events) already holds events: from the switch on, a key's new events "
        "may go to another partition than its earlier ones, so consumers can see them out of "
        "order; to keep the placement, set cluster.partitioner: consistent_random")


def test_a_new_partitioner_on_empty_topics_is_safe_and_still_recorded() -> None:
    plan = plan_topology([ORDERS], state("consistent_random", orders=0), "murmur2_random")
    (change,) = [c for c in plan.changes if c.kind is ChangeKind.SET_PARTITIONER]
    assert change.grade is Grade.SAFE
    assert change.reason == "no declared topic holds events yet, so no key moves"
    assert plan.to_dict()["changes"][-1] == {
        "kind": "set-partitioner", "grade": "safe",
        "summary": "partitioner: consistent_random -> murmur2_random",
        "reason": "no declared topic holds events yet, so no key moves",
        "key": "partitioner", "old": "consistent_random", "new": "murmur2_random"}

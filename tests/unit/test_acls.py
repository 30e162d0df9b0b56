"""The ACLs a topology implies: each service gets exactly what its declaration needs."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tidings.topology import TopologyInvalid, load_topology
from tidings.topology.acls import (
    AUDIT_TOPIC,
    CLUSTER_RESOURCE,
    REPLAY_STATE_TOPIC,
    Acl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    derive_acls,
)

REPO = Path(__file__).resolve().parents[2]

TOPOLOGY = """\
name: acl-test
topics:
  orders: {partitions: 3}
  inventory: {partitions: 2}
events:
  order.created: {topic: orders, schema: schemas/order.created.v1.avsc, key: order_id}
  stock.moved: {topic: inventory, schema: schemas/order.created.v1.avsc, key: order_id}
producers:
  shop: {publishes: [order.created]}
  inventory: {publishes: [stock.moved]}
consumers:
  inventory:
    subscribes: [order.created]
    handler: json:dumps
    retry: [10s, 1m]
  email:
    subscribes: [order.created]
    handler: json:dumps
    retry: [30s]
    dlq: false
{cluster}"""

T, G, C = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
READ, WRITE, DESCRIBE = Operation.READ, Operation.WRITE, Operation.DESCRIBE


def load(tmp_path: Path, cluster: str = "") -> object:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    shutil.copy(REPO / "schemas" / "order.created.v1.avsc", tmp_path / "schemas")
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.replace("{cluster}", textwrap.dedent(cluster)))
    return load_topology(path)


def rights(acls: list[Acl]) -> set[tuple[str, str, str]]:
    return {(a.resource_type.value, a.resource_name, a.operation.value) for a in acls}


def test_a_producer_writes_and_describes_the_topics_of_its_events(tmp_path: Path) -> None:
    acl_set = derive_acls(load(tmp_path))  # type: ignore[arg-type]
    assert rights(acl_set.of("User:shop")) == {
        ("TOPIC", "orders", "WRITE"), ("TOPIC", "orders", "DESCRIBE"),
        ("CLUSTER", CLUSTER_RESOURCE, "IDEMPOTENT_WRITE"),
    }


def test_a_group_reads_its_topics_and_writes_only_its_own_tiers_and_dlq(tmp_path: Path) -> None:
    acl_set = derive_acls(load(tmp_path))  # type: ignore[arg-type]
    email = rights(acl_set.of("User:email"))
    assert email == {
        ("GROUP", "email", "READ"),
        ("TOPIC", "orders", "READ"),
        ("TOPIC", "orders.email.retry.30s", "READ"), ("TOPIC", "orders.email.retry.30s", "WRITE"),
        ("TOPIC", "orders.email.replay", "READ"),
        ("CLUSTER", CLUSTER_RESOURCE, "IDEMPOTENT_WRITE"),
    }  # dlq: false, so no DLQ topic and no right on one


def test_a_service_that_consumes_and_publishes_is_one_principal_with_both(tmp_path: Path) -> None:
    inventory = rights(derive_acls(load(tmp_path)).of("User:inventory"))  # type: ignore[arg-type]
    assert {("TOPIC", "inventory", "WRITE"), ("TOPIC", "inventory", "DESCRIBE"),
            ("GROUP", "inventory", "READ"), ("TOPIC", "orders", "READ"),
            ("TOPIC", "orders.inventory.retry.10s", "WRITE"),
            ("TOPIC", "orders.inventory.retry.1m", "READ"),
            ("TOPIC", "orders.inventory.dlq", "WRITE"),
            ("TOPIC", "orders.inventory.replay", "READ")} <= inventory
    assert ("TOPIC", "orders.inventory.dlq", "READ") not in inventory
    assert ("TOPIC", "orders", "WRITE") not in inventory


def test_no_group_gets_anything_on_another_groups_derived_topics(tmp_path: Path) -> None:
    topology = load(tmp_path)
    acl_set = derive_acls(topology)  # type: ignore[arg-type]
    groups = ["inventory", "email"]
    for group in groups:
        others = [g for g in groups if g != group]
        for acl in acl_set.of(f"User:{group}"):
            for other in others:
                assert f".{other}." not in acl.resource_name, acl.describe()
                assert acl.resource_name != other or acl.resource_type is T, acl.describe()


def test_the_operator_can_replay_redrive_and_purge_and_nothing_else(tmp_path: Path) -> None:
    operator = derive_acls(load(tmp_path)).of("User:tidings-operator")  # type: ignore[arg-type]
    assert rights(operator) == {
        ("GROUP", "inventory", "READ"), ("GROUP", "email", "READ"),
        ("TOPIC", "orders", "READ"),
        ("TOPIC", "orders.inventory.replay", "READ"), ("TOPIC", "orders.inventory.replay", "WRITE"),
        ("TOPIC", "orders.email.replay", "READ"), ("TOPIC", "orders.email.replay", "WRITE"),
        ("TOPIC", "orders.inventory.dlq", "READ"), ("TOPIC", "orders.inventory.dlq", "DELETE"),
        ("TOPIC", REPLAY_STATE_TOPIC, "READ"), ("TOPIC", REPLAY_STATE_TOPIC, "WRITE"),
        ("TOPIC", REPLAY_STATE_TOPIC, "CREATE"),
        ("TOPIC", AUDIT_TOPIC, "READ"), ("TOPIC", AUDIT_TOPIC, "WRITE"),
        ("TOPIC", AUDIT_TOPIC, "CREATE"),
        ("GROUP", "tidings-replay-reader-", "READ"),
        ("CLUSTER", CLUSTER_RESOURCE, "IDEMPOTENT_WRITE"),
    }
    prefixed = [a for a in operator if a.pattern_type is PatternType.PREFIXED]
    assert [(a.resource_type, a.resource_name) for a in prefixed] == \
        [(G, "tidings-replay-reader-")]
    # The operator never writes a main topic nor a retry tier: replays reach one group only.
    assert not [a for a in operator if a.operation is WRITE and a.resource_name == "orders"]
    assert not [a for a in operator if ".retry." in a.resource_name]


def test_every_acl_allows_from_any_host_and_says_why(tmp_path: Path) -> None:
    acl_set = derive_acls(load(tmp_path))  # type: ignore[arg-type]
    assert acl_set.acls
    for acl in acl_set.acls:
        assert acl.permission is Permission.ALLOW and acl.host == "*"
        assert acl.why
    assert len(set(acl_set.acls)) == len(acl_set.acls)  # no right listed twice
    assert list(acl_set.acls) == sorted(acl_set.acls)  # a stable order for plans and diffs


def test_principals_can_be_mapped_under_cluster(tmp_path: Path) -> None:
    topology = load(tmp_path, """\
        cluster:
          principals:
            shop: User:CN=shop,O=acme
          operator_principal: User:ops
        """)
    acl_set = derive_acls(topology)  # type: ignore[arg-type]
    assert acl_set.principals == {"shop": "User:CN=shop,O=acme", "inventory": "User:inventory",
                                  "email": "User:email"}
    assert acl_set.operator == "User:ops"
    assert rights(acl_set.of("User:CN=shop,O=acme")) >= {("TOPIC", "orders", "WRITE")}
    assert acl_set.of("User:shop") == []
    assert list(acl_set.by_principal()) == ["User:CN=shop,O=acme", "User:inventory",
                                            "User:email", "User:ops"]


def test_a_principal_for_an_unknown_service_or_of_a_bad_shape_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyInvalid) as caught:
        load(tmp_path, """\
            cluster:
              principals:
                shoop: User:shop
            """)
    [problem] = caught.value.problems
    assert problem.line == 23
    assert "cluster.principals names 'shoop'" in problem.message
    assert "did you mean 'shop'" in problem.message
    with pytest.raises(TopologyInvalid) as caught:
        load(tmp_path, """\
            cluster:
              principals:
                shop: shop
            """)
    assert "must look like 'User:name'" in str(caught.value)


def test_acls_follow_the_file(tmp_path: Path) -> None:
    """A new retry tier is a new right; nothing else moves."""
    before = set(derive_acls(load(tmp_path)).acls)  # type: ignore[arg-type]
    path = tmp_path / "topology.yaml"
    path.write_text(path.read_text().replace("retry: [30s]", "retry: [30s, 5m]"))
    after = set(derive_acls(load_topology(path)).acls)
    added = {(a.principal, a.resource_name, a.operation) for a in after - before}
    assert added == {("User:email", "orders.email.retry.5m", READ),
                     ("User:email", "orders.email.retry.5m", WRITE)}
    assert before - after == set()

"""ACLs in ``topology plan``: what is added, what is removed, what is never touched."""

from __future__ import annotations

import json
from dataclasses import replace

from tidings.topology.acls import Acl, AclSet, Operation, PatternType, ResourceType
from tidings.topology.plan import ChangeKind, ClusterState, Grade, Resource, plan_topology
from tidings.topology.review import Review, item_from_change
from tidings.topology.state import _acl_entry, _parse_record

T, G = ResourceType.TOPIC, ResourceType.GROUP
LIT = PatternType.LITERAL


def acl(principal: str, kind: ResourceType, name: str, operation: Operation,
        why: str = "") -> Acl:
    return Acl(principal, kind, name, LIT, operation, why=why)


READ_ORDERS = acl("User:inventory", T, "orders", Operation.READ, "inventory subscribes")
READ_GROUP = acl("User:inventory", G, "inventory", Operation.READ, "inventory's group")
WRITE_ORDERS = acl("User:shop", T, "orders", Operation.WRITE, "shop publishes")


def implied(*acls: Acl) -> AclSet:
    return AclSet(tuple(sorted(acls)), {}, "User:tidings-operator")


def state(live: set[Acl] | None, managed: set[Acl] | None = None) -> ClusterState:
    return ClusterState(brokers=1, topics={}, acls=None if live is None else frozenset(live),
                        managed_acls=frozenset(managed or ()))


def test_granting_what_the_topology_implies_is_safe_and_says_why() -> None:
    plan = plan_topology([], state(set()), acls=implied(READ_ORDERS, WRITE_ORDERS))
    assert [(c.kind, c.grade, c.acl) for c in plan.changes] == [
        (ChangeKind.ADD_ACL, Grade.SAFE, READ_ORDERS),
        (ChangeKind.ADD_ACL, Grade.SAFE, WRITE_ORDERS)]
    assert plan.changes[0].reason == "inventory subscribes"
    assert plan.changes[0].summary == "allow User:inventory READ TOPIC orders"
    assert plan.acls_in_sync == 0


def test_acls_already_there_are_in_sync_and_plan_says_no_changes() -> None:
    # Live ACLs come back from the broker without a reason: equality ignores it.
    live = {replace(READ_ORDERS, why=""), replace(WRITE_ORDERS, why="")}
    plan = plan_topology([], state(live, live), acls=implied(READ_ORDERS, WRITE_ORDERS))
    assert plan.empty
    assert plan.acls_in_sync == 2
    assert plan.in_sync_text() == "0 topics in sync, 2 ACLs in sync"


def test_revoking_an_acl_this_topology_created_is_caution() -> None:
    plan = plan_topology([], state({READ_ORDERS, READ_GROUP}, {READ_ORDERS, READ_GROUP}),
                         acls=implied(READ_GROUP))
    (change,) = plan.changes
    assert (change.kind, change.grade, change.acl) == (ChangeKind.REMOVE_ACL, Grade.CAUTION,
                                                       READ_ORDERS)
    assert "refused" in change.reason


def test_acls_the_topology_never_created_are_left_alone() -> None:
    someone_elses = acl("User:fraud", T, "orders", Operation.READ)
    plan = plan_topology([], state({someone_elses, READ_ORDERS}, {READ_ORDERS}),
                         acls=implied(READ_ORDERS))
    assert plan.empty
    # A recorded ACL that someone already deleted by hand needs no deletion either.
    plan = plan_topology([], state(set(), {WRITE_ORDERS}), acls=implied())
    assert plan.empty


def test_a_cluster_without_an_authorizer_has_no_acls_to_manage() -> None:
    plan = plan_topology([], state(None), acls=implied(READ_ORDERS))
    assert plan.empty
    assert plan.acls_in_sync is None
    assert plan.in_sync_text() == "0 topics in sync"
    assert "acls_in_sync" not in plan.to_dict()["summary"]


def test_acl_rows_are_grouped_under_their_principal_in_the_review() -> None:
    plan = plan_topology([], state({READ_GROUP}, {READ_GROUP}),
                         acls=implied(READ_ORDERS, WRITE_ORDERS))
    items = [item_from_change(c, c.acl.principal if c.acl else "") for c in plan.changes]
    assert [(i.resource, i.subject, i.mark, i.change) for i in items] == [
        (Resource.ACL, "User:inventory", "+", "allow READ on topic orders"),
        (Resource.ACL, "User:shop", "+", "allow WRITE on topic orders"),
        (Resource.ACL, "User:inventory", "-", "revoke READ on group inventory"),
    ]
    markdown = Review("Topology plan", "`shop`", "against `k:9092`", items).markdown()
    assert "#### ACLs" in markdown and "| principal | change | grade | why |" in markdown
    assert "🟡 caution" in markdown
    json.dumps(plan.to_dict())  # the JSON format carries ACL changes too


def test_the_state_record_keeps_acls_and_older_records_have_none() -> None:
    record = {"topics": ["orders"], "partitioner": "murmur2_random",
              "acls": [_acl_entry(READ_ORDERS), _acl_entry(
                  Acl("User:ops", G, "tidings-replay-reader-", PatternType.PREFIXED,
                      Operation.READ))]}
    parsed = _parse_record(json.dumps(record).encode())
    assert parsed.acls == {READ_ORDERS, Acl("User:ops", G, "tidings-replay-reader-",
                                            PatternType.PREFIXED, Operation.READ)}
    assert _parse_record(json.dumps({"topics": []}).encode()).acls == frozenset()

"""Plan grading: what each difference between file and cluster costs, as pure logic."""

from __future__ import annotations

from tidings.topology.plan import (
    ChangeKind,
    ClusterState,
    Grade,
    LiveConfig,
    LiveTopic,
    plan_topology,
)
from tidings.topology.topology import DesiredTopic


def desired(name: str = "orders", partitions: int = 6, replication: int = 1,
            **config: str) -> DesiredTopic:
    return DesiredTopic(name=name, partitions=partitions, replication_factor=replication,
                        config={k.replace("_", "."): v for k, v in config.items()},
                        origin="declared", source_path=("topics", name))


def live(name: str = "orders", partitions: int = 6, replication: int = 1,
         **config: str) -> LiveTopic:
    return LiveTopic(name=name, partitions=partitions, replication_factor=replication,
                     config={k.replace("_", "."): LiveConfig(v, overridden=True)
                             for k, v in config.items()})


def cluster(*topics: LiveTopic, managed: tuple[str, ...] = ()) -> ClusterState:
    return ClusterState(brokers=1, topics={t.name: t for t in topics},
                        managed=frozenset(managed))


def test_creating_a_missing_topic_is_safe() -> None:
    plan = plan_topology([desired(retention_ms="1000")], cluster())
    (change,) = plan.changes
    assert (change.kind, change.grade) == (ChangeKind.CREATE, Grade.SAFE)
    assert change.partitions == 6
    assert change.config == {"retention.ms": "1000"}


def test_a_matching_cluster_plans_nothing() -> None:
    plan = plan_topology([desired(retention_ms="1000")], cluster(live(retention_ms="1000")))
    assert plan.empty
    assert plan.topics_in_sync == 1


def test_adding_partitions_is_caution_because_keys_move() -> None:
    plan = plan_topology([desired(partitions=12)], cluster(live(partitions=6)))
    (change,) = plan.changes
    assert (change.kind, change.grade) == (ChangeKind.ADD_PARTITIONS, Grade.CAUTION)
    assert "order" in change.reason


def test_removing_partitions_is_refused_with_the_way_out() -> None:
    plan = plan_topology([desired(partitions=3)], cluster(live(partitions=6)))
    assert plan.changes == []
    (refusal,) = plan.refusals
    assert "cannot remove partitions" in refusal.message
    assert refusal.source_path == ("topics", "orders", "partitions")


def test_changing_replication_factor_is_refused() -> None:
    plan = plan_topology([desired(replication=3)], cluster(live(replication=1)))
    (refusal,) = plan.refusals
    assert "replication factor 1 -> 3 refused" in refusal.message


def test_deleting_is_planned_only_for_topics_this_topology_managed() -> None:
    plan = plan_topology(
        [desired("orders")],
        cluster(live("orders"), live("payments"), live("someone-elses"), managed=("orders",
                                                                                 "payments")),
    )
    (change,) = plan.changes
    assert (change.kind, change.topic, change.grade) == (
        ChangeKind.DELETE, "payments", Grade.DESTRUCTIVE)


def test_raising_a_config_is_safe_and_lowering_retention_is_destructive() -> None:
    raised = plan_topology([desired(retention_ms="2000")], cluster(live(retention_ms="1000")))
    lowered = plan_topology([desired(retention_ms="500")], cluster(live(retention_ms="1000")))
    assert [c.grade for c in raised.changes] == [Grade.SAFE]
    assert [c.grade for c in lowered.changes] == [Grade.DESTRUCTIVE]


def test_unlimited_retention_counts_as_the_largest() -> None:
    to_finite = plan_topology([desired(retention_ms="1000")], cluster(live(retention_ms="-1")))
    to_unlimited = plan_topology([desired(retention_ms="-1")], cluster(live(retention_ms="1000")))
    assert [c.grade for c in to_finite.changes] == [Grade.DESTRUCTIVE]
    assert [c.grade for c in to_unlimited.changes] == [Grade.SAFE]


def test_leaving_compaction_is_destructive() -> None:
    plan = plan_topology([desired(cleanup_policy="delete")],
                         cluster(live(cleanup_policy="compact")))
    assert [c.grade for c in plan.changes] == [Grade.DESTRUCTIVE]
    into = plan_topology([desired(cleanup_policy="compact")],
                         cluster(live(cleanup_policy="delete")))
    assert [c.grade for c in into.changes] == [Grade.CAUTION]


def test_raising_min_insync_replicas_is_caution() -> None:
    plan = plan_topology([desired(min_insync_replicas="2")],
                         cluster(live(min_insync_replicas="1")))
    assert [c.grade for c in plan.changes] == [Grade.CAUTION]


def test_a_config_dropped_from_the_file_is_unset() -> None:
    plan = plan_topology([desired()], cluster(live(segment_ms="1000")))
    (change,) = plan.changes
    assert (change.kind, change.key, change.grade) == (
        ChangeKind.UNSET_CONFIG, "segment.ms", Grade.CAUTION)


def test_broker_defaults_are_not_unset() -> None:
    topic = LiveTopic("orders", 6, 1, {"segment.ms": LiveConfig("604800000", overridden=False)})
    assert plan_topology([desired()], cluster(topic)).empty


def test_changes_come_in_apply_order_and_serialize() -> None:
    plan = plan_topology(
        [desired("b", retention_ms="5"), desired("a", partitions=9)],
        cluster(live("a", partitions=6), live("b", retention_ms="1"), live("gone"),
                managed=("gone",)),
    )
    assert [c.kind for c in plan.changes] == [
        ChangeKind.ADD_PARTITIONS, ChangeKind.SET_CONFIG, ChangeKind.DELETE]
    as_json = plan.to_dict()
    assert as_json["summary"] == {"safe": 1, "caution": 1, "destructive": 1, "refused": 0,
                                  "in_sync": 0}

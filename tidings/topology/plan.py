"""Diff a topology against a cluster and grade every change (pure logic, no I/O).

Grades follow what the change can cost a user: *safe* changes lose nothing,
*caution* changes alter behaviour of existing data (e.g. more partitions move keys),
*destructive* changes delete data. Some changes Kafka cannot make in place at all;
those are *refused* with the way out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from tidings.topology import kafka_configs
from tidings.topology.acls import Acl, AclSet
from tidings.topology.source import Path_
from tidings.topology.topology import DesiredTopic


class Grade(StrEnum):
    SAFE = "safe"
    CAUTION = "caution"
    DESTRUCTIVE = "destructive"


class ChangeKind(StrEnum):
    CREATE = "create"
    ADD_PARTITIONS = "add-partitions"
    SET_CONFIG = "set-config"
    UNSET_CONFIG = "unset-config"
    DELETE = "delete"
    #: Recorded in the topology's state only: the partitioner is a client setting.
    SET_PARTITIONER = "set-partitioner"
    #: An access control entry the topology implies is created, or one it created and
    #: no longer implies is deleted (see tidings.topology.acls).
    ADD_ACL = "add-acl"
    REMOVE_ACL = "remove-acl"


class Resource(StrEnum):
    """What a change is to, in the order a reviewer reads a plan (tidings.topology.review).

    A new kind of change names its resource in :data:`RESOURCE_OF`; an ACL change
    kind maps to ``ACL`` and its rows land in the plan's ACL group with no other edit.
    """

    TOPIC = "topic"
    ACL = "acl"
    SCHEMA = "schema"
    EVENT = "event"
    SERVICE = "service"
    CLUSTER = "cluster"


#: The resource each cluster change kind acts on.
RESOURCE_OF: dict[ChangeKind, Resource] = {
    ChangeKind.CREATE: Resource.TOPIC,
    ChangeKind.ADD_PARTITIONS: Resource.TOPIC,
    ChangeKind.SET_CONFIG: Resource.TOPIC,
    ChangeKind.UNSET_CONFIG: Resource.TOPIC,
    ChangeKind.DELETE: Resource.TOPIC,
    ChangeKind.ADD_ACL: Resource.ACL,
    ChangeKind.REMOVE_ACL: Resource.ACL,
}


@dataclass(frozen=True)
class LiveConfig:
    value: str | None
    #: True when the topic sets it itself (a dynamic topic config), not a broker default.
    overridden: bool


@dataclass(frozen=True)
class LiveTopic:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, LiveConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterState:
    """What a cluster holds, as far as planning needs to know."""

    brokers: int
    topics: Mapping[str, LiveTopic]
    #: Topics a previous ``apply`` of this topology created; only these may be deleted.
    managed: frozenset[str] = frozenset()
    #: The partitioner recorded by the previous ``apply``; None when never applied.
    partitioner: str | None = None
    #: Events held per declared topic (measured only when the partitioner changes).
    messages: Mapping[str, int] = field(default_factory=dict)
    #: Every ACL on the cluster; None when the cluster has no authorizer (then ACLs are
    #: not managed: there is nothing to enforce them).
    acls: frozenset[Acl] | None = None
    #: ACLs a previous ``apply`` of this topology created; only these may be removed.
    managed_acls: frozenset[Acl] = frozenset()


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    topic: str
    grade: Grade
    summary: str
    reason: str = ""
    partitions: int | None = None
    replication_factor: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    old: str | None = None
    new: str | None = None
    #: The entry an ACL change creates or deletes.
    acl: Acl | None = None


@dataclass(frozen=True)
class Refusal:
    topic: str
    message: str
    source_path: Path_ = ()


@dataclass
class Plan:
    changes: list[Change]
    refusals: list[Refusal]
    topics_in_sync: int = 0
    #: ACLs the topology implies that the cluster already has; None when ACLs are not
    #: managed (a cluster without an authorizer).
    acls_in_sync: int | None = None

    @property
    def empty(self) -> bool:
        return not self.changes and not self.refusals

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.grade is Grade.DESTRUCTIVE]

    def counts(self) -> dict[str, int]:
        return {grade.value: sum(1 for c in self.changes if c.grade is grade) for grade in Grade}

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [
                {k: v for k, v in asdict(c).items() if v not in (None, "", {})}
                for c in self.changes
            ],
            "refused": [{"topic": r.topic, "message": r.message} for r in self.refusals],
            "summary": {**self.counts(), "refused": len(self.refusals),
                        "in_sync": self.topics_in_sync,
                        **({"acls_in_sync": self.acls_in_sync}
                           if self.acls_in_sync is not None else {})},
        }

    def in_sync_text(self) -> str:
        """``12 topics in sync`` (``, 40 ACLs in sync`` where ACLs are managed)."""
        text = f"{self.topics_in_sync} topics in sync"
        if self.acls_in_sync is not None:
            text += f", {self.acls_in_sync} ACLs in sync"
        return text


_ORDER = {ChangeKind.CREATE: 0, ChangeKind.ADD_PARTITIONS: 1, ChangeKind.SET_CONFIG: 2,
          ChangeKind.UNSET_CONFIG: 3, ChangeKind.ADD_ACL: 4, ChangeKind.REMOVE_ACL: 5,
          ChangeKind.DELETE: 6, ChangeKind.SET_PARTITIONER: 7}


def plan_topology(desired: Iterable[DesiredTopic], live: ClusterState,
                  partitioner: str | None = None, acls: AclSet | None = None) -> Plan:
    """The changes that make ``live`` match ``desired``, in the order apply runs them.

    ``partitioner`` is the topology's ``cluster.partitioner``; when the previous apply
    recorded another one, the plan says so (graded by whether keys would move).
    ``acls`` are the ACLs the topology implies; they are planned where the cluster
    enforces ACLs (``live.acls`` is not None)."""
    changes: list[Change] = []
    refusals: list[Refusal] = []
    in_sync = 0
    wanted = list(desired)
    for topic in wanted:
        current = live.topics.get(topic.name)
        if current is None:
            changes.append(_create(topic))
            continue
        topic_changes, topic_refusals = _diff_topic(topic, current)
        changes.extend(topic_changes)
        refusals.extend(topic_refusals)
        if not topic_changes and not topic_refusals:
            in_sync += 1
    wanted_names = {t.name for t in wanted}
    for name in sorted(live.managed - wanted_names):
        if name in live.topics:
            changes.append(Change(
                ChangeKind.DELETE, name, Grade.DESTRUCTIVE,
                summary=f"delete topic {name}",
                reason="no longer in the topology; its events are deleted with it",
            ))
    if partitioner is not None and live.partitioner not in (None, partitioner):
        changes.append(partitioner_change(live.partitioner or "", partitioner,
                                          {t.name: live.messages.get(t.name, 0)
                                           for t in wanted if t.origin == "declared"}))
    acls_in_sync: int | None = None
    if acls is not None and live.acls is not None:
        acl_changes, acls_in_sync = plan_acls(acls, live.acls, live.managed_acls)
        changes.extend(acl_changes)
    changes.sort(key=lambda c: _ORDER[c.kind])
    return Plan(changes=changes, refusals=refusals, topics_in_sync=in_sync,
                acls_in_sync=acls_in_sync)


def plan_acls(desired: AclSet, live: frozenset[Acl], managed: frozenset[Acl]
              ) -> tuple[list[Change], int]:
    """ACLs to create (what the topology implies and the cluster lacks: safe) and to
    delete (what an earlier apply created and the topology no longer implies: caution,
    a running service may lose access it uses). ACLs this topology never created are
    never touched. Returns the changes and how many implied ACLs are already there."""
    changes: list[Change] = []
    wanted = set(desired.acls)
    for acl in desired.acls:
        if acl not in live:
            changes.append(Change(
                ChangeKind.ADD_ACL, "", Grade.SAFE, summary=f"allow {acl.describe()}",
                reason=acl.why or "implied by topology.yaml", acl=acl))
    for acl in sorted(managed & live):
        if acl not in wanted:
            changes.append(Change(
                ChangeKind.REMOVE_ACL, "", Grade.CAUTION, summary=f"revoke {acl.describe()}",
                reason="topology.yaml no longer implies it: a service still running with "
                       "this access is refused from now on",
                acl=acl))
    return changes, sum(1 for acl in desired.acls if acl in live)


def partitioner_change(old: str, new: str, messages: Mapping[str, int]) -> Change:
    """The partitioner moves from ``old`` to ``new``; ``messages`` counts the events each
    declared topic holds. Keys only move where a topic already holds events."""
    holding = {topic: count for topic, count in messages.items() if count > 0}
    summary = f"partitioner: {old} -> {new}"
    if not holding:
        return Change(ChangeKind.SET_PARTITIONER, "", Grade.SAFE, summary=summary,
                      reason="no declared topic holds events yet, so no key moves",
                      key="partitioner", old=old, new=new)
    listed = ", ".join(f"{topic} ({count:,} event{'s' if count != 1 else ''})"
                       for topic, count in sorted(holding.items()))
    return Change(
        ChangeKind.SET_PARTITIONER, "", Grade.CAUTION, summary=summary,
        reason=f"{listed} already hold{'s' if len(holding) == 1 else ''} events: from the "
               "switch on, a key's new events may go to another partition than its earlier "
               "ones, so consumers can see them out of order; to keep the placement, set "
               f"cluster.partitioner: {old}",
        key="partitioner", old=old, new=new,
    )


def _create(topic: DesiredTopic) -> Change:
    configs = ", ".join(f"{k}={v}" for k, v in sorted(topic.config.items()))
    detail = f"{topic.partitions} partitions, replication {topic.replication_factor}"
    return Change(
        ChangeKind.CREATE, topic.name, Grade.SAFE,
        summary=f"create topic {topic.name} ({detail}{', ' + configs if configs else ''})",
        reason=topic.origin,
        partitions=topic.partitions,
        replication_factor=topic.replication_factor,
        config=dict(topic.config),
    )


def _diff_topic(topic: DesiredTopic, live: LiveTopic) -> tuple[list[Change], list[Refusal]]:
    changes: list[Change] = []
    refusals: list[Refusal] = []
    if topic.partitions < live.partitions:
        refusals.append(Refusal(
            topic.name,
            f"{topic.name}: partitions {live.partitions} -> {topic.partitions} refused: Kafka "
            f"cannot remove partitions; keep {live.partitions}, or create a new topic and "
            "migrate to it",
            (*topic.layout_path, "partitions"),
        ))
    elif topic.partitions > live.partitions:
        changes.append(Change(
            ChangeKind.ADD_PARTITIONS, topic.name, Grade.CAUTION,
            summary=f"add partitions to {topic.name}: {live.partitions} -> {topic.partitions}",
            reason="events of an existing key may land on a new partition, so their order "
                   "relative to earlier events of that key is no longer guaranteed",
            partitions=topic.partitions, old=str(live.partitions), new=str(topic.partitions),
        ))
    if topic.replication_factor != live.replication_factor:
        refusals.append(Refusal(
            topic.name,
            f"{topic.name}: replication factor {live.replication_factor} -> "
            f"{topic.replication_factor} refused: it needs a partition reassignment "
            "(kafka-reassign-partitions.sh), which tidings does not perform",
            (*topic.layout_path, "replication_factor"),
        ))
    for key, value in sorted(topic.config.items()):
        current = live.config.get(key)
        old = current.value if current else None
        if old == value:
            continue
        grade, reason = grade_config_change(key, old, value)
        changes.append(Change(
            ChangeKind.SET_CONFIG, topic.name, grade,
            summary=f"set {key} on {topic.name}: {old if old is not None else '(unset)'} "
                    f"-> {value}",
            reason=reason, key=key, old=old, new=value,
        ))
    for key, current in sorted(live.config.items()):
        if current.overridden and key not in topic.config:
            grade, reason = grade_config_unset(key, current.value)
            changes.append(Change(
                ChangeKind.UNSET_CONFIG, topic.name, grade,
                summary=f"unset {key} on {topic.name} (was {current.value}; the broker "
                        "default applies)",
                reason=reason, key=key, old=current.value,
            ))
    return changes, refusals


def grade_config_change(key: str, old: str | None, new: str) -> tuple[Grade, str]:
    """How risky it is to move a topic config from ``old`` to ``new``."""
    if key == "cleanup.policy":
        if old is not None and "compact" in old.split(",") and "compact" not in new.split(","):
            return Grade.DESTRUCTIVE, "the topic stops compacting: the latest value of each " \
                "key is no longer kept, and retention deletes it"
        return Grade.CAUTION, "changes how old records are removed"
    if old is None:
        return Grade.SAFE, "sets a config the topic did not have"
    old_n, new_n = kafka_configs.as_number(key, old), kafka_configs.as_number(key, new)
    if old_n is None or new_n is None:
        return Grade.CAUTION, "changes the topic's behaviour"
    if new_n > old_n:
        if key == "min.insync.replicas":
            return Grade.CAUTION, "writes with acks=all fail while fewer replicas are in sync"
        return Grade.SAFE, "raises a limit"
    if key in kafka_configs.RETENTION:
        return Grade.DESTRUCTIVE, "records outside the new retention are deleted"
    return Grade.CAUTION, "lowers a limit"


def grade_config_unset(key: str, old: str | None) -> tuple[Grade, str]:
    if key == "cleanup.policy" and old is not None and "compact" in old.split(","):
        return Grade.DESTRUCTIVE, "the topic stops compacting once the broker default applies"
    if key in kafka_configs.RETENTION:
        return Grade.CAUTION, "the broker's default retention applies, which may delete records"
    return Grade.CAUTION, "the broker default applies"

"""The ACLs a topology implies: who may write, read and manage what, derived, never hand-written.

One derivation serves every consumer of ACLs: ``topology plan``/``apply`` on a secure
cluster and the Strimzi ``KafkaUser`` resources of ``tidings deploy render``. It is a
pure function of the declaration (no broker, no I/O), so both always agree.

- Each service in topology.yaml is a principal: ``User:<service>``, or what
  ``cluster.principals`` maps it to. A service that both consumes and publishes
  (``inventory``) is one principal with both sets of rights.
- A producer gets WRITE and DESCRIBE on the topics of the events it publishes.
- A consumer group gets READ on its subscribed topics, READ and WRITE on its own retry
  tiers, READ on its own replay topic, WRITE on its own DLQ, and READ on its group id.
  It gets nothing on another group's derived topics: a retry for inventory can never
  be read by email, nor email's dead letters by anyone but email and the operator.
- Whoever writes uses the idempotent producer (``enable.idempotence``): IDEMPOTENT_WRITE
  on the cluster. Kafka 3.0+ accepts WRITE on any topic instead (KIP-679); older
  brokers demand it, and it grants nothing beyond idempotent produce.
- Scheduling (``scheduling:``/``schedules:``): every producer may WRITE to the intake
  and cancellations topics (a delayed publish, a cancel). The scheduler is a principal
  of its own (``User:scheduler``): it reads and writes its topics, writes every
  declared topic (it delivers there), and uses transactions under its prefix.
- Request-reply: a service with ``replies:`` READs its reply topic (assign-only, under a
  group prefix of that name); a group that publishes and consumes events such a service
  publishes may WRITE that reply topic (it may answer requests).
- The operator principal (``cluster.operator_principal``) runs replay, DLQ redrive and
  purge: it reads the groups' source topics and dead letters, writes their replay
  topics, deletes dead letters (purge), moves a stopped group's offsets (rewind and
  undo), keeps its state in ``__tidings_replay_state``, and records each action in the
  audit log ``__tidings_audit`` (which it may read back, as the console does).

Kafka's own rule applies on top: READ, WRITE and DELETE imply DESCRIBE on the same
resource, so the metadata and offset look-ups each client makes need no extra ACL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tidings.topology.topology import (
    Topology,
    dlq_topic_name,
    replay_topic_name,
    retry_topic_name,
)

#: The operator's principal unless ``cluster.operator_principal`` says otherwise.
DEFAULT_OPERATOR_PRINCIPAL = "User:tidings-operator"
#: Kafka's name for the one cluster resource an ACL can be on.
CLUSTER_RESOURCE = "kafka-cluster"
#: Replay and DLQ state, kept on the cluster (tidings.replay.state.STATE_TOPIC).
REPLAY_STATE_TOPIC = "__tidings_replay_state"
#: The audit log every replay, redrive and purge writes first (tidings.audit.AUDIT_TOPIC).
AUDIT_TOPIC = "__tidings_audit"
#: Group ids of the throwaway readers replay and DLQ commands use (assign-only, never
#: committing; tidings.replay.cluster.Cluster.consumer). librdkafka still looks up
#: their coordinator, which needs DESCRIBE on the group, hence a prefixed grant.
REPLAY_READER_GROUP_PREFIX = "tidings-replay-reader-"


class ResourceType(StrEnum):
    """Kafka's ACL resource types (the names confluent-kafka's ``ResourceType`` uses)."""

    TOPIC = "TOPIC"
    GROUP = "GROUP"
    CLUSTER = "CLUSTER"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"


class PatternType(StrEnum):
    """How an ACL's resource name matches (``ResourcePatternType``)."""

    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(StrEnum):
    """Kafka ACL operations (``AclOperation``)."""

    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"


class Permission(StrEnum):
    """ALLOW or DENY (``AclPermissionType``); a derived ACL always allows."""

    ALLOW = "ALLOW"
    DENY = "DENY"


@dataclass(frozen=True, order=True)
class Acl:
    """One access control entry, as Kafka stores it (a binding of pattern and entry).

    ``why`` says which declaration implies it, for plans and reviews; it takes no part
    in equality, so the same right implied twice is one ACL.
    """

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"
    why: str = field(default="", compare=False)

    def describe(self) -> str:
        """``User:inventory READ TOPIC orders`` (plus the pattern when it is not literal)."""
        pattern = "" if self.pattern_type is PatternType.LITERAL else " (prefixed)"
        verb = "" if self.permission is Permission.ALLOW else f"{self.permission.value} "
        return (f"{self.principal} {verb}{self.operation.value} "
                f"{self.resource_type.value} {self.resource_name}{pattern}")


@dataclass(frozen=True)
class AclSet:
    """Every ACL a topology implies, and the principal of each service."""

    acls: tuple[Acl, ...]
    #: service name -> principal, for every producer and consumer service.
    principals: Mapping[str, str]
    operator: str

    def of(self, principal: str) -> list[Acl]:
        """The ACLs of one principal, sorted."""
        return [acl for acl in self.acls if acl.principal == principal]

    def by_principal(self) -> dict[str, list[Acl]]:
        """Principal -> its ACLs, principals in a stable order (services, then operator)."""
        order = [*dict.fromkeys([*self.principals.values(), self.operator])]
        return {principal: self.of(principal) for principal in order if self.of(principal)}


def principal_of(topology: Topology, service: str) -> str:
    """The principal a service connects as: the ``cluster.principals`` entry, else
    ``User:<service>``."""
    return topology.cluster.principals.get(service, f"User:{service}")


def operator_principal(topology: Topology) -> str:
    """The principal that runs replay, redrive and purge."""
    return topology.cluster.operator_principal or DEFAULT_OPERATOR_PRINCIPAL


def services(topology: Topology) -> list[str]:
    """Every service the topology names: producers first, then consumer groups."""
    return list(dict.fromkeys([*topology.producers, *topology.consumers]))


class _Grants:
    """Collects ACLs; the same right implied twice is kept once, with its first reason."""

    def __init__(self) -> None:
        self.found: dict[Acl, Acl] = {}

    def __call__(self, principal: str, resource: ResourceType, name: str,
                 operations: Iterable[Operation], why: str,
                 pattern: PatternType = PatternType.LITERAL) -> None:
        for operation in operations:
            acl = Acl(principal, resource, name, pattern, operation, why=why)
            self.found.setdefault(acl, acl)


def derive_acls(topology: Topology) -> AclSet:
    """The ACLs ``topology`` implies (pure: reads only the declaration)."""
    grant = _Grants()
    for service, producer in topology.producers.items():
        principal = principal_of(topology, service)
        for event in producer.publishes:
            spec = topology.events.get(event)
            if spec is None:
                continue  # an unknown event is a validation problem, reported there
            grant(principal, ResourceType.TOPIC, spec.topic,
                  (Operation.WRITE, Operation.DESCRIBE), f"{service} publishes {event}")
        grant(principal, ResourceType.CLUSTER, CLUSTER_RESOURCE, (Operation.IDEMPOTENT_WRITE,),
              f"{service} publishes with the idempotent producer")

    for group, consumer in topology.consumers.items():
        principal = principal_of(topology, group)
        grant(principal, ResourceType.GROUP, group, (Operation.READ,),
              f"{group} consumes as group {group}")
        for topic in topology.topics_of_consumer(group):
            grant(principal, ResourceType.TOPIC, topic, (Operation.READ,),
                  f"{group} subscribes to {topic}")
            for delay in consumer.retry:
                grant(principal, ResourceType.TOPIC, retry_topic_name(topic, group, delay),
                      (Operation.READ, Operation.WRITE),
                      f"retry tier {delay.label} of {group} on {topic}")
            grant(principal, ResourceType.TOPIC, replay_topic_name(topic, group),
                  (Operation.READ,), f"replays for {group} on {topic}")
            if consumer.dlq:
                grant(principal, ResourceType.TOPIC, dlq_topic_name(topic, group),
                      (Operation.WRITE,), f"dead letters of {group} on {topic}")
        # The runtime opens its idempotent producer (retries, dead letters) at start,
        # and librdkafka asks for a producer id straight away.
        grant(principal, ResourceType.CLUSTER, CLUSTER_RESOURCE, (Operation.IDEMPOTENT_WRITE,),
              f"{group} routes failures with the idempotent producer")

    _grant_scheduling(topology, grant)
    _grant_replies(topology, grant)
    operator = operator_principal(topology)
    _grant_operator(topology, operator, grant)
    principals = {service: principal_of(topology, service) for service in services(topology)}
    if topology.scheduling_topics is not None:
        principals.setdefault(SCHEDULER, principal_of(topology, SCHEDULER))
    return AclSet(tuple(sorted(grant.found.values())), principals, operator)


#: The scheduler's service name (``tidings run scheduler``), and so its default principal.
SCHEDULER = "scheduler"


def _grant_scheduling(topology: Topology, grant: _Grants) -> None:
    names = topology.scheduling_topics
    if names is None:
        return
    for service in topology.producers:
        principal = principal_of(topology, service)
        for topic in (names.intake, names.cancelled):
            grant(principal, ResourceType.TOPIC, topic, (Operation.WRITE, Operation.DESCRIBE),
                  f"{service} may publish later and cancel (scheduling)")
    scheduler = principal_of(topology, SCHEDULER)
    for topic in (*names.waiting, names.state, names.cancelled):
        grant(scheduler, ResourceType.TOPIC, topic, (Operation.READ,),
              "the scheduler reads what waits, the cancellations and the ticks' state")
    for topic in (*(t for _, t in names.tiers), names.state):
        grant(scheduler, ResourceType.TOPIC, topic, (Operation.WRITE,),
              "the scheduler moves waiting events between tiers and records ticks")
    for topic in topology.topics:
        grant(scheduler, ResourceType.TOPIC, topic, (Operation.WRITE,),
              "the scheduler delivers due events and ticks to their topics")
    grant(scheduler, ResourceType.GROUP, f"{names.base}.", (Operation.READ,),
          "the scheduler's group and its assign-only readers", PatternType.PREFIXED)
    grant(scheduler, ResourceType.TRANSACTIONAL_ID, f"{names.group}.",
          (Operation.WRITE, Operation.DESCRIBE),
          "the scheduler consumes, produces and commits in one transaction",
          PatternType.PREFIXED)
    grant(scheduler, ResourceType.CLUSTER, CLUSTER_RESOURCE, (Operation.IDEMPOTENT_WRITE,),
          "the scheduler's transactional producer is idempotent")


def _grant_replies(topology: Topology, grant: _Grants) -> None:
    for service, topic in topology.reply_topics().items():
        principal = principal_of(topology, service)
        grant(principal, ResourceType.TOPIC, topic, (Operation.READ,),
              f"{service} reads the replies to its requests")
        grant(principal, ResourceType.GROUP, f"{topic}.", (Operation.READ,),
              f"{service} reads its replies through assign-only consumers",
              PatternType.PREFIXED)
        requests = set(topology.producers[service].publishes)
        for group, consumer in topology.consumers.items():
            # Only a group that publishes can reply (a reply goes through its outbox).
            if group in topology.producers and requests & set(consumer.subscribes):
                grant(principal_of(topology, group), ResourceType.TOPIC, topic,
                      (Operation.WRITE, Operation.DESCRIBE),
                      f"{group} answers requests of {service}")


def _grant_operator(topology: Topology, operator: str, grant: _Grants) -> None:
    if not topology.consumers:
        return  # replay and DLQ commands act on consumer groups only
    for group, consumer in topology.consumers.items():
        # Rewind and undo move the offsets of a stopped group (OffsetCommit: READ on the
        # group and on the topic); every command first describes the group.
        grant(operator, ResourceType.GROUP, group, (Operation.READ,),
              f"replay rewinds and undoes the offsets of {group}")
        for topic in topology.topics_of_consumer(group):
            grant(operator, ResourceType.TOPIC, topic, (Operation.READ,),
                  f"replay copies ranges of {topic} for {group}")
            grant(operator, ResourceType.TOPIC, replay_topic_name(topic, group),
                  (Operation.READ, Operation.WRITE),
                  f"replay and redrive copy into (and resume from) {group}'s replay topic")
            if consumer.dlq:
                grant(operator, ResourceType.TOPIC, dlq_topic_name(topic, group),
                      (Operation.READ, Operation.DELETE),
                      f"dlq list/show/redrive read, and purge deletes, {group}'s dead letters")
    grant(operator, ResourceType.TOPIC, REPLAY_STATE_TOPIC,
          (Operation.READ, Operation.WRITE, Operation.CREATE),
          "replay and redrive keep resumable plans and undo records there")
    # Found on a secure broker: without rights here an action stops before it starts,
    # since its audit record cannot be written (nor the topic even seen, to create it).
    grant(operator, ResourceType.TOPIC, AUDIT_TOPIC,
          (Operation.READ, Operation.WRITE, Operation.CREATE),
          "replay, redrive and purge record each action in the audit log first")
    grant(operator, ResourceType.GROUP, REPLAY_READER_GROUP_PREFIX, (Operation.READ,),
          "replay and dlq read through assign-only consumers of this group prefix",
          PatternType.PREFIXED)
    grant(operator, ResourceType.CLUSTER, CLUSTER_RESOURCE, (Operation.IDEMPOTENT_WRITE,),
          "replay and redrive copy with the idempotent producer")

"""Read what a cluster holds: topics, partitions, replication and topic configs."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, ConfigResource, ConfigSource

from tidings.errors import TidingsError
from tidings.kafka_clients import earliest_offset, latest_offset
from tidings.topology.acls import Acl, Operation, PatternType, Permission, ResourceType
from tidings.topology.plan import ClusterState, LiveConfig, LiveTopic


def is_internal(topic: str) -> bool:
    return topic.startswith("__") or topic.startswith("_confluent") or topic == "_schemas"


def read_cluster_state(
    admin: AdminClient,
    metadata: ClusterMetadata,
    *,
    describe: Iterable[str],
    managed: frozenset[str],
    timeout: float,
) -> ClusterState:
    """Topic layout from ``metadata`` and configs for the topics named in ``describe``."""
    topics: dict[str, LiveTopic] = {}
    present = {name: meta for name, meta in metadata.topics.items() if meta.error is None}
    wanted = [name for name in dict.fromkeys(describe) if name in present]
    configs = _describe_configs(admin, wanted, timeout)
    for name, meta in present.items():
        if is_internal(name):
            continue
        partitions = meta.partitions
        replication = max((len(p.replicas) for p in partitions.values()), default=0)
        topics[name] = LiveTopic(
            name=name,
            partitions=len(partitions),
            replication_factor=replication,
            config=configs.get(name, {}),
        )
    return ClusterState(brokers=len(metadata.brokers), topics=topics, managed=managed)


def _describe_configs(
    admin: AdminClient, names: list[str], timeout: float
) -> dict[str, dict[str, LiveConfig]]:
    if not names:
        return {}
    result: dict[str, dict[str, LiveConfig]] = {}
    for name in names:
        entries = _describe_one(admin, name, timeout)
        result[name] = {
            key: LiveConfig(
                value=entry.value,
                overridden=_source_id(entry.source) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
            )
            for key, entry in entries.items()
        }
    return result


def _describe_one(admin: AdminClient, name: str, timeout: float) -> Any:
    # On a multi-broker cluster a topic created a moment ago can be in one broker's
    # metadata and not yet in the next one's: that answer is retried, briefly.
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    deadline = time.monotonic() + timeout
    while True:
        future = admin.describe_configs([resource], request_timeout=timeout)[resource]
        try:
            return future.result(timeout=timeout)
        except KafkaException as exc:
            unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if not unknown or time.monotonic() > deadline:
                raise TidingsError(f"could not read the configs of topic {name}: "
                                   f"{exc.args[0].str()}") from None
            time.sleep(0.2)
        except Exception as exc:  # a timeout from the future
            raise TidingsError(f"could not read the configs of topic {name}: {exc}") from None


def _source_id(source: object) -> int:
    # confluent-kafka hands back the enum or its raw int depending on the call path.
    raw = getattr(source, "value", source)
    return raw if isinstance(raw, int) else -1


def count_messages(
    admin: AdminClient, metadata: ClusterMetadata, topics: Iterable[str], timeout: float
) -> dict[str, int]:
    """Events each existing topic of ``topics`` holds (latest minus earliest offset,
    summed over its partitions); topics not on the cluster are left out."""
    partitions = [TopicPartition(name, p) for name in dict.fromkeys(topics)
                  if name in metadata.topics and metadata.topics[name].error is None
                  for p in metadata.topics[name].partitions]
    if not partitions:
        return {}
    counts: dict[str, int] = {}
    low = _offsets(admin, {tp: earliest_offset() for tp in partitions}, timeout)
    high = _offsets(admin, {tp: latest_offset() for tp in partitions}, timeout)
    for key, end in high.items():
        counts[key[0]] = counts.get(key[0], 0) + max(0, end - low.get(key, 0))
    return counts


def _offsets(admin: AdminClient, request: dict[TopicPartition, Any],
             timeout: float) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets(request, request_timeout=timeout)
    result: dict[tuple[str, int], int] = {}
    for tp, future in futures.items():
        try:
            result[(tp.topic, tp.partition)] = int(future.result(timeout=timeout).offset)
        except KafkaException as exc:
            raise TidingsError(f"could not read the offsets of {tp.topic}[{tp.partition}]: "
                               f"{exc.args[0].str()}") from None
    return result


# -- ACLs ---------------------------------------------------------------------------------

def read_acls(admin: AdminClient, timeout: float) -> frozenset[Acl] | None:
    """Every ACL the cluster holds that Tidings can express; None when the cluster has
    no authorizer (``SECURITY_DISABLED``), so there is nothing to manage."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
    )
    from confluent_kafka.admin import ResourceType as KafkaResourceType

    if not authorizer_configured(admin, timeout):
        return None
    # None matches any name, principal and host (the stubs say str).
    anything: Any = None
    every = AclBindingFilter(KafkaResourceType.ANY, anything, ResourcePatternType.ANY,
                             anything, anything, AclOperation.ANY, AclPermissionType.ANY)
    try:
        bindings = admin.describe_acls(every, request_timeout=timeout).result(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() == KafkaError.SECURITY_DISABLED:
            return None
        if error.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
            raise TidingsError(
                "cannot read the cluster's ACLs: this principal may not describe them "
                f"({error.str()}); topology plan and apply manage ACLs on a secure cluster, "
                "so run them as a principal with DESCRIBE and ALTER on the cluster (the "
                "admin)") from None
        raise TidingsError(f"could not read the cluster's ACLs: {error.str()}") from None
    found: set[Acl] = set()
    for binding in bindings:
        acl = acl_from_binding(binding)
        if acl is not None:
            found.add(acl)
    return frozenset(found)


def authorizer_configured(admin: AdminClient, timeout: float) -> bool:
    """Whether the brokers enforce ACLs (``authorizer.class.name`` is set).

    Asked of a broker's config because a Kafka 4 broker without an authorizer answers
    DescribeAcls with an empty list, not ``SECURITY_DISABLED``; only CreateAcls fails
    ("No Authorizer is configured"). A principal that may not read broker configs is on
    a cluster that authorizes.
    """
    try:
        brokers = admin.list_topics(timeout=timeout).brokers
    except KafkaException as exc:
        raise TidingsError(f"could not read the cluster's brokers: {exc.args[0].str()}") from None
    if not brokers:
        return False
    resource = ConfigResource(ConfigResource.Type.BROKER, str(min(brokers)))
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(
            timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() in (KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                                  KafkaError.TOPIC_AUTHORIZATION_FAILED):
            return True
        raise TidingsError(f"could not read broker {min(brokers)}'s config: "
                           f"{exc.args[0].str()}") from None
    entry = entries.get("authorizer.class.name")
    return bool(entry is not None and entry.value)


def acl_from_binding(binding: Any) -> Acl | None:
    """Our :class:`Acl` for a confluent-kafka ``AclBinding``; None for what no topology
    derives (an ALL operation, a CLUSTER_ACTION, a resource type we do not use)."""
    kind = _RESOURCE_FROM_KAFKA.get(binding.restype.name)
    try:
        pattern = PatternType(binding.resource_pattern_type.name)
        operation = Operation(binding.operation.name)
        permission = Permission(binding.permission_type.name)
    except ValueError:
        return None
    if kind is None:
        return None
    return Acl(str(binding.principal), kind, str(binding.name), pattern, operation,
               permission, str(binding.host))


def acl_binding(acl: Acl) -> Any:
    """The confluent-kafka ``AclBinding`` of ``acl`` (also good as an exact filter)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
    )
    from confluent_kafka.admin import ResourceType as KafkaResourceType

    return AclBinding(KafkaResourceType[_RESOURCE_TO_KAFKA[acl.resource_type]],
                      acl.resource_name, ResourcePatternType[acl.pattern_type.value],
                      acl.principal, acl.host, AclOperation[acl.operation.value],
                      AclPermissionType[acl.permission.value])


def acl_filter(acl: Acl) -> Any:
    """An ``AclBindingFilter`` that matches exactly ``acl``."""
    from confluent_kafka.admin import AclBindingFilter

    binding = acl_binding(acl)
    return AclBindingFilter(binding.restype, binding.name, binding.resource_pattern_type,
                            binding.principal, binding.host, binding.operation,
                            binding.permission_type)


#: Kafka calls the cluster resource BROKER in its admin API.
_RESOURCE_TO_KAFKA = {ResourceType.TOPIC: "TOPIC", ResourceType.GROUP: "GROUP",
                      ResourceType.CLUSTER: "BROKER",
                      ResourceType.TRANSACTIONAL_ID: "TRANSACTIONAL_ID"}
_RESOURCE_FROM_KAFKA = {kafka: ours for ours, kafka in _RESOURCE_TO_KAFKA.items()}

"""Strimzi KafkaTopic and KafkaUser resources: the topics ``topology apply`` makes, and
the ACLs :func:`tidings.topology.acls.derive_acls` derives."""

from __future__ import annotations

from typing import Any

from tidings.deploy.names import labels, topic_resource_name, user_resource_name
from tidings.topology import DesiredTopic
from tidings.topology.acls import Acl, AclSet, Operation, PatternType, ResourceType
from tidings.topology.deploy_model import DeploySpec

API_VERSION = "kafka.strimzi.io/v1"

_RESOURCE = {ResourceType.TOPIC: "topic", ResourceType.GROUP: "group",
             ResourceType.CLUSTER: "cluster", ResourceType.TRANSACTIONAL_ID: "transactionalId"}
_PATTERN = {PatternType.LITERAL: "literal", PatternType.PREFIXED: "prefix"}
_OPERATION = {
    Operation.READ: "Read", Operation.WRITE: "Write", Operation.CREATE: "Create",
    Operation.DELETE: "Delete", Operation.ALTER: "Alter", Operation.DESCRIBE: "Describe",
    Operation.DESCRIBE_CONFIGS: "DescribeConfigs", Operation.ALTER_CONFIGS: "AlterConfigs",
    Operation.IDEMPOTENT_WRITE: "IdempotentWrite",
}


def _meta(name: str, namespace: str | None, cluster: str, part_of: str,
          component: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    # The Topic and User Operators act only on resources labelled with their cluster.
    meta["labels"] = {"strimzi.io/cluster": cluster,
                      **labels(part_of, name[:63].rstrip("-."), component)}
    return meta


def kafka_topic(topic: DesiredTopic, *, cluster: str, part_of: str,
                namespace: str | None) -> dict[str, Any]:
    """The topic with the partitions, replication factor and configs apply would set."""
    name = topic_resource_name(topic.name)
    spec: dict[str, Any] = {}
    if name != topic.name:
        spec["topicName"] = topic.name
    spec["partitions"] = topic.partitions
    spec["replicas"] = topic.replication_factor
    if topic.config:
        spec["config"] = dict(sorted(topic.config.items()))
    component = "topic" if topic.parent is None else "derived-topic"
    meta = _meta(name, namespace, cluster, part_of, component)
    meta["annotations"] = {"tidings.io/origin": topic.origin}
    return {"apiVersion": API_VERSION, "kind": "KafkaTopic", "metadata": meta, "spec": spec}


def kafka_user(principal: str, acls: list[Acl], *, deploy: DeploySpec, cluster: str,
               part_of: str, namespace: str | None) -> dict[str, Any]:
    """One principal's ACLs, each resource's operations in one rule."""
    rules: dict[tuple[ResourceType, str, PatternType, str, str], list[str]] = {}
    for acl in acls:
        key = (acl.resource_type, acl.resource_name, acl.pattern_type, acl.host,
               acl.permission.value.lower())
        rules.setdefault(key, []).append(_OPERATION[acl.operation])
    rendered: list[dict[str, Any]] = []
    for (kind, name, pattern, host, permission), operations in rules.items():
        resource: dict[str, Any] = {"type": _RESOURCE[kind]}
        if kind is not ResourceType.CLUSTER:
            resource["name"] = name
            resource["patternType"] = _PATTERN[pattern]
        rendered.append({"resource": resource, "operations": sorted(set(operations)),
                         "host": host, "type": permission})
    spec: dict[str, Any] = {}
    if deploy.kafka.authentication != "none":
        spec["authentication"] = {"type": deploy.kafka.authentication}
    spec["authorization"] = {"type": "simple", "acls": rendered}
    name = user_resource_name(principal)
    return {"apiVersion": API_VERSION, "kind": "KafkaUser",
            "metadata": _meta(name, namespace, cluster, part_of, "kafka-user"), "spec": spec}


def kafka_users(acl_set: AclSet, *, deploy: DeploySpec, cluster: str, part_of: str,
                namespace: str | None) -> list[dict[str, Any]]:
    """A KafkaUser per principal that holds any ACL (each service, and the operator)."""
    return [kafka_user(principal, acls, deploy=deploy, cluster=cluster, part_of=part_of,
                       namespace=namespace)
            for principal, acls in acl_set.by_principal().items()]

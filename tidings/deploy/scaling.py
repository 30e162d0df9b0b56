"""KEDA ScaledObjects: a consumer group scales on its Kafka lag, never past its partitions."""

from __future__ import annotations

from typing import Any

from tidings.deploy.names import labels
from tidings.deploy.services import ServicePlan
from tidings.topology import Topology
from tidings.topology.deploy_model import DeploySpec


def scaled_object(plan: ServicePlan, topology: Topology, *, part_of: str,
                  namespace: str | None, deploy: DeploySpec, bootstrap: str) -> dict[str, Any]:
    """One ``kafka`` trigger per main topic the group subscribes to (KEDA scales to the
    largest). Retry tiers are left out: their events wait on purpose, and more replicas
    would not make them due sooner."""
    assert plan.max_replicas is not None
    scaling = deploy.autoscaling
    triggers: list[dict[str, Any]] = []
    for topic in topology.topics_of_consumer(plan.service):
        trigger: dict[str, Any] = {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": bootstrap,
                "consumerGroup": plan.service,
                "topic": topic,
                "lagThreshold": str(scaling.lag_threshold),
                # The runtime starts a new group at the earliest offset; so must the lag.
                "offsetResetPolicy": "earliest",
            },
        }
        if scaling.authentication_ref:
            trigger["authenticationRef"] = {"name": scaling.authentication_ref}
        triggers.append(trigger)
    meta: dict[str, Any] = {"name": plan.name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = labels(part_of, plan.name, plan.component)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"name": plan.name},
            "minReplicaCount": plan.replicas,
            "maxReplicaCount": plan.max_replicas,
            "pollingInterval": max(1, round(scaling.polling_interval.seconds)),
            "cooldownPeriod": max(1, round(scaling.cooldown_period.seconds)),
            "triggers": triggers,
        },
    }

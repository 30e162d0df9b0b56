"""Deployment, Service and PodDisruptionBudget of one service."""

from __future__ import annotations

from typing import Any

from tidings.deploy.names import labels, selector
from tidings.deploy.services import CA_DIR, DATA_DIR, USER_CERT_DIR, ServicePlan
from tidings.topology.deploy_model import DeploySpec

#: The user the image runs as (ops/image/Dockerfile).
RUN_AS_USER = 10001

Object = dict[str, Any]


def _meta(name: str, namespace: str | None, object_labels: dict[str, str],
          annotations: dict[str, str] | None = None) -> Object:
    meta: Object = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = object_labels
    if annotations:
        meta["annotations"] = annotations
    return meta


def deployment(plan: ServicePlan, *, part_of: str, image: str, namespace: str | None,
               deploy: DeploySpec, cluster: str) -> Object:
    """The Deployment: probes on /healthz, a grace period longer than the shutdown
    timeout (SIGTERM drains in-flight events), resources, and scrape annotations."""
    port_name = "metrics" if plan.metrics else "http"
    probe = {"httpGet": {"path": "/healthz", "port": port_name}, "periodSeconds": 10,
             "timeoutSeconds": 5, "failureThreshold": 3}
    container: Object = {"name": plan.name, "image": image}
    if plan.command is not None:
        container["command"] = plan.command
    if plan.args:
        container["args"] = plan.args
    container.update({
        "ports": [{"name": port_name, "containerPort": plan.port, "protocol": "TCP"}],
        "env": plan.env,
        "resources": {kind: dict(values) for kind, values in plan.resources.items()},
        # The runtime answers 503 until it has joined its group; give it a minute or two
        # before liveness may restart it.
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 24},
        "livenessProbe": probe,
        "readinessProbe": {**probe, "failureThreshold": 1},
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": _mounts(deploy),
    })
    pod_labels = labels(part_of, plan.name, plan.component)
    annotations = ({"prometheus.io/scrape": "true", "prometheus.io/port": str(plan.port),
                    "prometheus.io/path": "/metrics"} if plan.metrics else None)
    pod_meta: Object = {"labels": pod_labels}
    if annotations:
        pod_meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(plan.name, namespace, pod_labels),
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": selector(part_of, plan.name)},
            # One new pod before an old one leaves: a group rebalances once per step.
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": pod_meta,
                "spec": {
                    "terminationGracePeriodSeconds": plan.grace_period_s,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": RUN_AS_USER,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": _volumes(plan, deploy, cluster),
                },
            },
        },
    }


def _mounts(deploy: DeploySpec) -> list[Object]:
    mounts: list[Object] = [{"name": "data", "mountPath": DATA_DIR},
                            {"name": "tmp", "mountPath": "/tmp"}]
    if deploy.kafka.tls:
        mounts.append({"name": "kafka-ca", "mountPath": CA_DIR, "readOnly": True})
    if deploy.kafka.authentication == "tls":
        mounts.append({"name": "kafka-user", "mountPath": USER_CERT_DIR, "readOnly": True})
    return mounts


def _volumes(plan: ServicePlan, deploy: DeploySpec, cluster: str) -> list[Object]:
    volumes: list[Object] = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    if deploy.kafka.tls:
        # Strimzi's Cluster Operator keeps the cluster CA in <cluster>-cluster-ca-cert.
        volumes.append({"name": "kafka-ca", "secret": {
            "secretName": f"{cluster}-cluster-ca-cert", "items": [{"key": "ca.crt",
                                                                   "path": "ca.crt"}]}})
    if deploy.kafka.authentication == "tls" and plan.user is not None:
        volumes.append({"name": "kafka-user", "secret": {"secretName": plan.user}})
    return volumes


def service(plan: ServicePlan, *, part_of: str, namespace: str | None) -> Object:
    """A ClusterIP Service on the metrics port (a producer's: its HTTP port)."""
    port_name = "metrics" if plan.metrics else "http"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(plan.name, namespace, labels(part_of, plan.name, plan.component)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(part_of, plan.name),
            "ports": [{"name": port_name, "port": plan.port, "targetPort": port_name,
                       "protocol": "TCP"}],
        },
    }


def disruption_budget(plan: ServicePlan, *, part_of: str, namespace: str | None) -> Object:
    """At most one pod of the service evicted at a time (a node drain moves them one by
    one, so a group rebalances a pod at a time and never stops altogether)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(plan.name, namespace, labels(part_of, plan.name, plan.component)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(part_of, plan.name)}},
    }

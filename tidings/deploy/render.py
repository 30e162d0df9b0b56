"""``render_k8s``: every Kubernetes object a topology's services need, grouped in files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidings.deploy.errors import DeployError
from tidings.deploy.names import workload_name
from tidings.deploy.scaling import scaled_object
from tidings.deploy.services import ServicePlan, plan_services
from tidings.deploy.strimzi import kafka_topic, kafka_users
from tidings.deploy.workloads import deployment, disruption_budget, service
from tidings.topology import Topology
from tidings.topology.acls import derive_acls
from tidings.topology.deploy_model import DeploySpec


@dataclass(frozen=True)
class RenderOptions:
    """What the command line adds to (and overrides in) the ``deploy:`` section."""

    image: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class Manifest:
    """One file of the output: its name and the objects in it, in order."""

    filename: str
    objects: list[dict[str, Any]]


@dataclass(frozen=True)
class Rendered:
    """The manifests, and what the operator should know about them."""

    manifests: list[Manifest]
    warnings: list[str] = field(default_factory=list)

    def objects(self) -> list[dict[str, Any]]:
        return [obj for manifest in self.manifests for obj in manifest.objects]


def render_k8s(topology: Topology, options: RenderOptions | None = None) -> Rendered:
    """Deployments, Services, PodDisruptionBudgets and KEDA ScaledObjects per service;
    Strimzi KafkaTopics for every declared and derived topic and KafkaUsers with the
    derived ACLs. Raises :class:`DeployError` for what cannot be rendered."""
    options = options or RenderOptions()
    deploy = topology.deploy or DeploySpec()
    image = options.image or deploy.image
    if not image:
        raise DeployError("no image to deploy: pass --image REF or set deploy.image in "
                          f"{topology.path.name} (build it with ops/image/Dockerfile)")
    namespace = options.namespace or deploy.namespace
    cluster = deploy.kafka.cluster or workload_name(topology.name)
    bootstrap = deploy.kafka.bootstrap_servers or \
        f"{cluster}-kafka-bootstrap:{9093 if deploy.kafka.tls else 9092}"
    part_of = topology.name
    plans = plan_services(topology, deploy, bootstrap)

    manifests: list[Manifest] = []
    for plan in plans:
        objects = [deployment(plan, part_of=part_of, image=image, namespace=namespace,
                              deploy=deploy, cluster=cluster),
                   service(plan, part_of=part_of, namespace=namespace),
                   disruption_budget(plan, part_of=part_of, namespace=namespace)]
        if plan.max_replicas is not None:
            objects.append(scaled_object(plan, topology, part_of=part_of, namespace=namespace,
                                         deploy=deploy, bootstrap=bootstrap))
        manifests.append(Manifest(f"{plan.name}.yaml", objects))
    manifests.append(Manifest("kafka-topics.yaml", [
        kafka_topic(topic, cluster=cluster, part_of=part_of, namespace=namespace)
        for topic in topology.desired_topics()]))
    manifests.append(Manifest("kafka-users.yaml", kafka_users(
        derive_acls(topology), deploy=deploy, cluster=cluster, part_of=part_of,
        namespace=namespace)))
    return Rendered(manifests, _warnings(plans, deploy))


def _warnings(plans: list[ServicePlan], deploy: DeploySpec) -> list[str]:
    warnings = []
    for plan in plans:
        names = {item["name"] for item in plan.env}
        most = plan.max_replicas or plan.replicas
        if plan.is_group and most > 1 and "TIDINGS_DATABASE_URL" not in names:
            warnings.append(
                f"{plan.service}: up to {most} replicas but no TIDINGS_DATABASE_URL in "
                f"deploy.services.{plan.service}.env: each pod would keep its own SQLite "
                "idempotency store, so an event redelivered to another pod after a "
                "rebalance takes effect twice; point it at a shared PostgreSQL")
        if plan.max_replicas is not None and deploy.kafka.authentication != "none" \
                and not deploy.autoscaling.authentication_ref:
            warnings.append(
                f"{plan.service}: KEDA reads lag without credentials; set "
                "deploy.autoscaling.authentication_ref to a TriggerAuthentication")
    return warnings

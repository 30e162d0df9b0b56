"""Each service's deployment settings, resolved: topology, ``deploy:`` section and defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tidings.deploy.errors import DeployError
from tidings.deploy.names import user_resource_name, workload_name
from tidings.topology import Topology
from tidings.topology.acls import principal_of, services
from tidings.topology.deploy_checks import group_partitions
from tidings.topology.deploy_model import (
    DeploySpec,
    EnvValue,
    ResourcesSpec,
    SecretRef,
    ServiceDeploySpec,
)

#: What a service gets when neither its entry nor ``deploy.defaults`` sets resources.
DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "512Mi"},
}
#: Seconds beyond the shutdown timeout before Kubernetes sends SIGKILL: committing the
#: last offsets and leaving the group takes a moment after in-flight events finish.
GRACE_MARGIN_S = 15
#: Where the image keeps the project (ops/image/Dockerfile) and where SQLite files go.
APP_DIR = "/app"
DATA_DIR = f"{APP_DIR}/.tidings"
CA_DIR = "/etc/tidings/kafka-ca"
RUN_COMMAND = ["tidings", "run"]
USER_CERT_DIR = "/etc/tidings/kafka-user"


@dataclass(frozen=True)
class ServicePlan:
    """One service as it will run: what starts, how many, with what."""

    service: str
    name: str  # the Kubernetes name
    is_group: bool
    args: list[str]
    command: list[str] | None
    replicas: int
    max_replicas: int | None  # set for autoscaled consumer groups
    partitions: int | None  # consumer groups only
    port: int  # /healthz (and /metrics for groups) is served here
    metrics: bool
    shutdown_timeout_s: float
    resources: Mapping[str, Mapping[str, str]]
    env: list[dict[str, Any]] = field(default_factory=list)
    user: str | None = None  # the KafkaUser whose credentials it uses

    @property
    def grace_period_s(self) -> int:
        return int(self.shutdown_timeout_s) + GRACE_MARGIN_S

    @property
    def component(self) -> str:
        return "consumer-group" if self.is_group else "producer"


def plan_services(topology: Topology, deploy: DeploySpec, bootstrap: str) -> list[ServicePlan]:
    """Every producer and consumer service of ``topology``, resolved (consumers that also
    publish, such as inventory, are one service)."""
    plans = [_plan(topology, deploy, service, bootstrap) for service in services(topology)]
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.name in seen:
            raise DeployError(f"services {seen[plan.name]!r} and {plan.service!r} would both be "
                              f"named {plan.name!r} in Kubernetes; rename one")
        seen[plan.name] = plan.service
    return plans


def _plan(topology: Topology, deploy: DeploySpec, service: str, bootstrap: str) -> ServicePlan:
    spec = deploy.services.get(service, ServiceDeploySpec())
    is_group = service in topology.consumers
    shutdown = (spec.shutdown_timeout or deploy.defaults.shutdown_timeout).seconds
    replicas = spec.replicas if spec.replicas is not None else deploy.defaults.replicas
    user = None if deploy.kafka.authentication == "none" \
        else user_resource_name(principal_of(topology, service))
    if is_group:
        partitions = group_partitions(topology, service)
        args = [service, "--metrics-port", str(deploy.metrics_port),
                "--shutdown-timeout", f"{shutdown:g}"]
        # The image's entrypoint too (ops/image/Dockerfile), spelled out for other images.
        command, port = RUN_COMMAND, deploy.metrics_port
        autoscaled = deploy.autoscaling.enabled
        max_replicas = min(spec.max_replicas or partitions, partitions) if autoscaled else None
        if max_replicas is not None:
            replicas = min(replicas, max_replicas)
    else:
        if spec.command is None or spec.port is None:
            where = _where(topology, ("deploy", "services", service))
            raise DeployError(f"{where}producer {service!r} is not a consumer group, so "
                              f"tidings cannot know how it starts: set "
                              f"deploy.services.{service}.command and .port")
        partitions, args, command, port, max_replicas = None, [], spec.command, spec.port, None
    return ServicePlan(
        service=service, name=workload_name(service), is_group=is_group, args=args,
        command=command, replicas=replicas, max_replicas=max_replicas, partitions=partitions,
        port=port, metrics=is_group, shutdown_timeout_s=shutdown,
        resources=_resources(spec.resources or deploy.defaults.resources),
        env=_env(deploy, {**deploy.defaults.env, **spec.env}, bootstrap, user), user=user,
    )


def _resources(spec: ResourcesSpec | None) -> Mapping[str, Mapping[str, str]]:
    if spec is None:
        return DEFAULT_RESOURCES
    out: dict[str, dict[str, str]] = {}
    if spec.requests:
        out["requests"] = {k: str(v) for k, v in spec.requests.items()}
    if spec.limits:
        out["limits"] = {k: str(v) for k, v in spec.limits.items()}
    return out


def kafka_env(deploy: DeploySpec, bootstrap: str, user: str | None) -> list[dict[str, Any]]:
    """How a pod reaches Kafka: bootstrap servers, and TLS/SASL settings as the
    ``TIDINGS_KAFKA_*`` variables the settings read; the password only by reference to
    the Secret Strimzi's User Operator writes for the KafkaUser."""
    kafka = deploy.kafka
    env: list[dict[str, Any]] = [{"name": "KAFKA_BOOTSTRAP_SERVERS", "value": bootstrap}]
    sasl = kafka.authentication == "scram-sha-512"
    protocol = {(False, False): "PLAINTEXT", (True, False): "SSL",
                (False, True): "SASL_PLAINTEXT", (True, True): "SASL_SSL"}[(kafka.tls, sasl)]
    env.append({"name": "TIDINGS_KAFKA_SECURITY_PROTOCOL", "value": protocol})
    if kafka.tls:
        env.append({"name": "TIDINGS_KAFKA_SSL_CA_LOCATION", "value": f"{CA_DIR}/ca.crt"})
    if sasl and user is not None:
        env += [
            {"name": "TIDINGS_KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
            {"name": "TIDINGS_KAFKA_SASL_USERNAME", "value": user},
            {"name": "TIDINGS_KAFKA_SASL_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": user, "key": "password"}}},
        ]
    if kafka.authentication == "tls" and user is not None:
        env += [
            {"name": "TIDINGS_KAFKA_SSL_CERTIFICATE_LOCATION",
             "value": f"{USER_CERT_DIR}/user.crt"},
            {"name": "TIDINGS_KAFKA_SSL_KEY_LOCATION", "value": f"{USER_CERT_DIR}/user.key"},
        ]
    return env


def _env(deploy: DeploySpec, declared: Mapping[str, EnvValue], bootstrap: str,
         user: str | None) -> list[dict[str, Any]]:
    env = kafka_env(deploy, bootstrap, user)
    fixed = {item["name"] for item in env}
    for name, value in declared.items():
        if name in fixed:
            raise DeployError(f"deploy env {name} is set by tidings from deploy.kafka; "
                              "change it there")
        if isinstance(value, SecretRef):
            env.append({"name": name,
                        "valueFrom": {"secretKeyRef": {"name": value.secret, "key": value.key}}})
        elif isinstance(value, bool):
            env.append({"name": name, "value": "true" if value else "false"})
        else:
            env.append({"name": name, "value": str(value)})
    return env


def _where(topology: Topology, path: tuple[str, ...]) -> str:
    line = topology.line_of(path)
    from tidings.topology.load import display_name

    name = display_name(topology.path)
    return f"{name}:{line}: " if line else f"{name}: "

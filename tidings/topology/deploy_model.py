"""The optional ``deploy:`` section of topology.yaml: how services run on Kubernetes.

It holds only what differs from the defaults ``tidings deploy render`` picks
(one replica, modest resources, the Strimzi conventions for the Kafka cluster), and
it never holds a secret: an environment variable is either a plain value or a
reference ``{secret: NAME, key: KEY}`` to a Kubernetes Secret. A plain value that
looks like a secret (a password variable, a URL with credentials) is an error.

Like every section it is plain data validated by pydantic, so an environment
override of the raw file can cover it like any other section.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from tidings.durations import Duration, parse_duration

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
#: Variable names whose value is a secret, and must therefore be a reference.
SECRET_NAME_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE_KEY", "API_KEY")
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s:]+:[^/@\s]+@")

ResourceName = Literal["cpu", "memory", "ephemeral-storage"]
DurationField = Annotated[Duration, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    # The same strictness as tidings.topology.model (which imports this module).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SecretRef(_Strict):
    """An environment value kept in a Kubernetes Secret."""

    secret: str
    key: str

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", value):
            raise ValueError(f"secret name {value!r} is not a valid Kubernetes name "
                             "(lower case letters, digits, '-' and '.')")
        return value


EnvValue = str | int | float | bool | SecretRef


class ResourcesSpec(_Strict):
    """Kubernetes resource requests and limits, as quantities (``100m``, ``256Mi``)."""

    requests: dict[ResourceName, str | int] = Field(default_factory=dict)
    limits: dict[ResourceName, str | int] = Field(default_factory=dict)

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str | int]) -> dict[str, str | int]:
        for name, quantity in value.items():
            if not QUANTITY.match(str(quantity)):
                raise ValueError(f"{name}: {quantity!r} is not a Kubernetes quantity "
                                 "(e.g. 250m, 1, 256Mi, 1Gi)")
        return value


class ServiceDeploySpec(_Strict):
    """How one service (a consumer group or a producer) runs."""

    #: Replicas; with autoscaling, the fewest KEDA keeps.
    replicas: int | None = Field(None, ge=0, le=1000)
    #: The most KEDA scales a consumer group to (never above its partition count).
    max_replicas: int | None = Field(None, ge=1, le=1000)
    resources: ResourcesSpec | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    #: How a producer service starts (consumer groups run ``tidings run SERVICE``).
    command: list[str] | None = Field(None, min_length=1)
    #: The HTTP port of a producer service, probed on ``/healthz``.
    port: int | None = Field(None, ge=1, le=65535)
    #: What ``tidings run --shutdown-timeout`` gets; the pod's grace period is longer.
    shutdown_timeout: DurationField | None = None

    @model_validator(mode="after")
    def _replica_bounds(self) -> ServiceDeploySpec:
        if (self.replicas is not None and self.max_replicas is not None
                and self.max_replicas < self.replicas):
            raise ValueError(f"max_replicas {self.max_replicas} is below replicas "
                             f"{self.replicas}")
        return self


class DeployDefaultsSpec(_Strict):
    """What every service gets unless its own entry says otherwise."""

    replicas: int = Field(1, ge=0, le=1000)
    resources: ResourcesSpec | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    shutdown_timeout: DurationField = Duration(30_000)


class KafkaDeploySpec(_Strict):
    """The Strimzi-managed Kafka cluster the services connect to."""

    #: The Strimzi ``Kafka`` resource (the ``strimzi.io/cluster`` label); default: the
    #: topology's name.
    cluster: str | None = None
    #: Default: ``<cluster>-kafka-bootstrap:9092`` (9093 with TLS), Strimzi's service.
    bootstrap_servers: str | None = None
    #: How services authenticate; each gets a KafkaUser of this type.
    authentication: Literal["none", "scram-sha-512", "tls"] = "scram-sha-512"
    #: Connect over TLS, trusting the cluster CA secret ``<cluster>-cluster-ca-cert``.
    tls: bool = True

    @field_validator("cluster")
    @classmethod
    def _cluster_name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL.match(value):
            raise ValueError(f"cluster {value!r} is not a valid Kubernetes name")
        return value

    @model_validator(mode="after")
    def _tls_for_certificates(self) -> KafkaDeploySpec:
        if self.authentication == "tls" and not self.tls:
            raise ValueError("authentication tls (client certificates) needs tls: true")
        return self


class AutoscalingSpec(_Strict):
    """KEDA scaling of consumer groups on their Kafka lag."""

    enabled: bool = True
    #: Lag per replica KEDA aims for.
    lag_threshold: int = Field(100, ge=1)
    #: A KEDA ``TriggerAuthentication`` the platform provides for reading lag.
    authentication_ref: str | None = None
    polling_interval: DurationField = Duration(15_000)
    cooldown_period: DurationField = Duration(300_000)


class DeploySpec(_Strict):
    """The ``deploy:`` section."""

    image: str | None = None
    namespace: str | None = None
    metrics_port: int = Field(9400, ge=1, le=65535)
    kafka: KafkaDeploySpec = Field(default_factory=KafkaDeploySpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    defaults: DeployDefaultsSpec = Field(default_factory=DeployDefaultsSpec)
    services: dict[str, ServiceDeploySpec] = Field(default_factory=dict)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE.match(value):
            raise ValueError(f"image {value!r} is not an image reference")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL.match(value):
            raise ValueError(f"namespace {value!r} is not a valid Kubernetes name")
        return value


def env_problem(name: str, value: EnvValue) -> str | None:
    """Why ``name: value`` cannot be a deployed variable (a bad name, an inlined secret);
    the message never repeats the value."""
    if not ENV_NAME.match(name):
        return f"{name!r} is not an environment variable name"
    if isinstance(value, SecretRef):
        return None
    if any(marker in name.upper() for marker in SECRET_NAME_MARKERS):
        return (f"{name} looks like a secret; reference it instead: "
                f"{name}: {{secret: NAME, key: KEY}}")
    if isinstance(value, str) and CREDENTIALS_IN_URL.search(value):
        return (f"{name} holds a URL with a password; keep it in a Secret and reference it: "
                f"{name}: {{secret: NAME, key: KEY}}")
    return None

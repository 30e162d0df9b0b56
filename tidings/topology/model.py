"""The declaration in topology.yaml, as pydantic models (the edge of the system).

Every model forbids unknown keys: a typo such as ``partitons`` must be an error,
not a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from tidings.durations import Duration, parse_duration
from tidings.topology.deploy_model import DeploySpec

TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
EVENT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")
HANDLER_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
MODEL_REF = HANDLER_REF  # "package.module:ClassName", the same shape as a handler
PRINCIPAL = re.compile(r"^[A-Za-z][A-Za-z0-9]*:\S.*$")  # "User:inventory", "User:CN=a,O=b"

DurationField = Annotated[Duration, BeforeValidator(parse_duration)]
ConfigValue = str | int | float | bool | list[str]
Compatibility = Literal["BACKWARD", "FORWARD", "FULL", "NONE"]
#: librdkafka's partitioners. ``murmur2_random`` places keyed events where Java's
#: DefaultPartitioner does; librdkafka's own default, ``consistent_random``, hashes CRC32.
Partitioner = Literal["murmur2_random", "murmur2", "consistent_random", "consistent",
                      "fnv1a_random", "fnv1a", "random"]
DEFAULT_PARTITIONER: Partitioner = "murmur2_random"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ClusterSpec(_Strict):
    """Non-secret connection settings; secrets come from the environment."""

    bootstrap_servers: str | None = None
    schema_registry_url: str | None = None
    #: Register a writer schema on its first publish (like Confluent's
    #: ``auto.register.schemas``); otherwise ``tidings schemas register`` must have.
    auto_register_schemas: bool = False
    #: Which partition a keyed event goes to; changing it moves keys on topics with data.
    partitioner: Partitioner = DEFAULT_PARTITIONER
    properties: dict[str, str | int | bool] = Field(default_factory=dict)
    #: service -> the Kafka principal it connects as (default ``User:<service>``).
    principals: dict[str, str] = Field(default_factory=dict)
    #: The principal of replay, redrive and purge (default ``User:tidings-operator``).
    operator_principal: str | None = None

    @field_validator("principals")
    @classmethod
    def _principal_shapes(cls, value: dict[str, str]) -> dict[str, str]:
        for service, principal in value.items():
            if not PRINCIPAL.match(principal):
                raise ValueError(f"principal {principal!r} of {service} must look like "
                                 "'User:name'")
        return value

    @field_validator("operator_principal")
    @classmethod
    def _operator_shape(cls, value: str | None) -> str | None:
        if value is not None and not PRINCIPAL.match(value):
            raise ValueError(f"operator principal {value!r} must look like 'User:name'")
        return value
    #: How many brokers the cluster has, where known: validation then bounds replication
    #: factors without a connection (an environment's cluster, typically).
    brokers: int | None = Field(None, ge=1)

    @property
    def client_properties(self) -> dict[str, str | int | bool]:
        """``properties`` plus the partitioner: what every Kafka client of the topology
        starts from (consumers and admin clients ignore the partitioner)."""
        return {**self.properties, "partitioner": self.partitioner}


class DefaultsSpec(_Strict):
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    config: dict[str, ConfigValue] = Field(default_factory=dict)


class TopicSpec(_Strict):
    partitions: int | None = Field(None, ge=1)
    replication_factor: int | None = Field(None, ge=1)
    config: dict[str, ConfigValue] = Field(default_factory=dict)


class EventSpec(_Strict):
    topic: str
    schema_path: str = Field(alias="schema")
    key: str | None = None
    compatibility: Compatibility = "BACKWARD"
    #: The event's typed model, ``package.module:ClassName`` (a tidings.codec.events.Event).
    model: str | None = None

    @field_validator("model")
    @classmethod
    def _model_shape(cls, value: str | None) -> str | None:
        if value is not None and not MODEL_REF.match(value):
            raise ValueError(f"model {value!r} must look like 'package.module:ClassName'")
        return value


class ProducerSpec(_Strict):
    publishes: list[str] = Field(min_length=1)


class BatchSpec(_Strict):
    max_events: int = Field(500, ge=1)
    max_wait: DurationField = Duration(2000)


def parse_start_from(value: str) -> int | None:
    """``start_from`` as epoch ms for a moment, None for ``earliest`` / ``latest``;
    :class:`ValueError` for anything else."""
    if value in ("earliest", "latest"):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"start_from {value!r}: use earliest, latest or an ISO 8601 time "
                         "such as 2026-11-01T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a time without a zone is UTC, as in --from
    return int(moment.timestamp() * 1000)


class ConsumerSpec(_Strict):
    subscribes: list[str] = Field(min_length=1)
    handler: str
    retry: list[DurationField] = Field(default_factory=list)
    dlq: bool = True
    #: Topic configs for this group's dead-letter topics, over what they copy from the
    #: source topic (a DLQ usually keeps its events longer than the source does).
    dlq_config: dict[str, ConfigValue] = Field(default_factory=dict)
    concurrency: int = Field(1, ge=1, le=1000)
    batch: BatchSpec | None = None
    #: ``batch``: one transaction per batch, for handlers whose effects live in ``ctx.db``
    #: (fast); ``event``: one per event, for handlers with effects outside the database
    #: (mail, webhooks, HTTP calls), so a crash redoes at most one. See the README.
    transaction: Literal["batch", "event"] = "batch"
    #: Where a group with no committed offsets starts on its main topics: ``earliest``
    #: (every event the topic still holds), ``latest`` (only events published from now
    #: on) or an ISO 8601 time. Retry and replay topics always start at their beginning.
    start_from: str = "earliest"

    @model_validator(mode="after")
    def _batch_handlers_take_whole_batches(self) -> ConsumerSpec:
        if self.batch is not None and "transaction" in self.model_fields_set \
                and self.transaction == "event":
            raise ValueError("transaction: event does not go with batch: (a batch handler "
                             "gets its whole batch in one transaction); drop one of them")
        return self

    @field_validator("start_from", mode="before")
    @classmethod
    def _start_from_shape(cls, value: object) -> str:
        if isinstance(value, datetime | date):  # YAML reads an unquoted timestamp itself
            value = value.isoformat()
        if not isinstance(value, str):
            raise ValueError("start_from must be earliest, latest or an ISO 8601 time")
        parse_start_from(value)
        return value

    @field_validator("handler")
    @classmethod
    def _handler_shape(cls, value: str) -> str:
        if not HANDLER_REF.match(value):
            raise ValueError(
                f"handler {value!r} must look like 'package.module:function'"
            )
        return value

    @field_validator("retry")
    @classmethod
    def _positive_delays(cls, tiers: list[Duration]) -> list[Duration]:
        for tier in tiers:
            if tier.millis <= 0:
                raise ValueError("a retry tier needs a delay greater than zero")
        return tiers


#: Top-level sections and the model of one entry in each (``None``: the section is one model).
SECTION_ENTRY_MODELS: dict[str, type[_Strict]] = {
    "topics": TopicSpec,
    "events": EventSpec,
    "producers": ProducerSpec,
    "consumers": ConsumerSpec,
}
SINGLE_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "cluster": ClusterSpec,
    "defaults": DefaultsSpec,
    "deploy": DeploySpec,
}
TOP_LEVEL_KEYS = ("name", *SINGLE_SECTION_MODELS, *SECTION_ENTRY_MODELS)

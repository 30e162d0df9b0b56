"""The declaration in topology.yaml, as pydantic models (the edge of the system).

Every model forbids unknown keys: a typo such as ``partitons`` must be an error,
not a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

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


def _replies_flag(value: object) -> object:
    """``replies: true`` is ``replies: {}``; ``false`` is none."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


class RepliesSpec(_Strict):
    """The service's reply topic, ``<service>.replies`` (request-reply)."""

    partitions: int | None = Field(None, ge=1)
    #: Replies are useless once their request timed out; keep them briefly.
    retention: DurationField = Duration(3_600_000)


class ProducerSpec(_Strict):
    publishes: list[str] = Field(min_length=1)
    #: Set when the service sends requests and waits for replies (``Publisher.request``).
    replies: Annotated[RepliesSpec | None, BeforeValidator(_replies_flag)] = None


class SchedulingSpec(_Strict):
    """Delayed and scheduled events: the scheduler's topics (see tidings.scheduling)."""

    #: The base name of the scheduling topics (default ``<topology name>.schedule``).
    topic: str | None = None
    partitions: int | None = Field(None, ge=1)
    #: The longest delay a publisher may ask for.
    max_delay: DurationField = Duration(30 * 86_400_000)
    #: Topic configs for the waiting topics, over the scheduler's own defaults.
    config: dict[str, ConfigValue] = Field(default_factory=dict)

    @field_validator("topic")
    @classmethod
    def _topic_shape(cls, value: str | None) -> str | None:
        if value is not None and not TOPIC_NAME.match(value):
            raise ValueError(f"topic {value!r} is not a valid Kafka topic name")
        return value


class ScheduleSpec(_Strict):
    """A recurring schedule: one event per tick (see tidings.timing.recurrence)."""

    cron: str | None = None
    every: DurationField | None = None
    timezone: str = "UTC"
    event: str
    #: The event's fields; the text ``{tick}`` becomes the tick's time, ``{tick_date}``
    #: its date in the schedule's time zone.
    data: dict[str, Any] = Field(default_factory=dict)
    catch_up: Literal["all", "latest", "none"] = "latest"

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            from tidings.timing.cron import CronExpression

            CronExpression.parse(value)
        return value

    @field_validator("every")
    @classmethod
    def _every_whole_seconds(cls, value: Duration | None) -> Duration | None:
        if value is not None and (value.millis < 1000 or value.millis % 1000):
            raise ValueError(f"{value.label} must be whole seconds, at least 1s")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from tidings.timing.zones import zone_problem

        problem = zone_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _cron_or_every(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule needs exactly one of cron: (e.g. \"0 2 * * *\") "
                             "or every: (e.g. 10m)")
        return self


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
    "schedules": ScheduleSpec,
}
SINGLE_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "cluster": ClusterSpec,
    "defaults": DefaultsSpec,
    "scheduling": SchedulingSpec,
    "deploy": DeploySpec,
}
TOP_LEVEL_KEYS = ("name", *SINGLE_SECTION_MODELS, *SECTION_ENTRY_MODELS)

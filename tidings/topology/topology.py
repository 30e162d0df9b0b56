"""The validated topology and the topics it implies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tidings.codec.catalogue import DeclaredEvent
from tidings.durations import Duration
from tidings.topology import kafka_configs
from tidings.topology import scheduling as scheduling_names
from tidings.topology.deploy_model import DeploySpec
from tidings.topology.model import (
    ClusterSpec,
    ConsumerSpec,
    DefaultsSpec,
    EventSpec,
    ProducerSpec,
    ScheduleSpec,
    SchedulingSpec,
    TopicSpec,
)
from tidings.topology.source import Path_, nearest_line

if TYPE_CHECKING:
    from tidings.codec import Codec, SchemaCatalogue


def retry_topic_name(topic: str, group: str, delay: Duration) -> str:
    return f"{topic}.{group}.retry.{delay.label}"


def dlq_topic_name(topic: str, group: str) -> str:
    return f"{topic}.{group}.dlq"


def replay_topic_name(topic: str, group: str) -> str:
    return f"{topic}.{group}.replay"


def replies_topic_name(service: str) -> str:
    """The reply topic of a service that sends requests (``replies:`` under producers)."""
    return f"{service}.replies"


@dataclass(frozen=True)
class DesiredTopic:
    """A topic the topology wants on the cluster, with where it comes from."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]
    origin: str  # "declared", or e.g. "retry tier 10s of inventory"
    source_path: Path_ = ()
    #: The declared topic a retry/DLQ/replay topic copies its layout from.
    parent: str | None = None
    #: Where the layout of a topic with no parent is declared (scheduling, replies).
    layout_at: Path_ | None = None

    @property
    def layout_path(self) -> Path_:
        """Where the partition count and replication factor of this topic are declared."""
        return self.layout_at or ("topics", self.parent or self.name)


@dataclass(frozen=True)
class Topology:
    """A topology.yaml that passed validation, ready to plan, publish and consume from."""

    path: Path
    name: str
    cluster: ClusterSpec
    defaults: DefaultsSpec
    topics: Mapping[str, TopicSpec]
    events: Mapping[str, EventSpec]
    producers: Mapping[str, ProducerSpec]
    consumers: Mapping[str, ConsumerSpec]
    lines: Mapping[Path_, int] = field(default_factory=dict, repr=False)
    #: The optional ``deploy:`` section (``tidings deploy render``).
    deploy: DeploySpec | None = None
    #: The environment this topology was resolved for (``local`` unless chosen).
    env: str = "local"
    #: Every environment the file declares, ``local`` first.
    environments: tuple[str, ...] = ("local",)
    #: ``scheduling:`` as declared (None: not declared, defaults apply if needed).
    scheduling: SchedulingSpec | None = None
    schedules: Mapping[str, ScheduleSpec] = field(default_factory=dict)

    @property
    def scheduling_topics(self) -> scheduling_names.SchedulingTopics | None:
        """The scheduler's topics, when the topology schedules anything (a
        ``scheduling:`` section or ``schedules:``); else None."""
        if self.scheduling is None and not self.schedules:
            return None
        declared = self.scheduling.topic if self.scheduling else None
        return scheduling_names.SchedulingTopics(
            scheduling_names.base_name(self.name, declared))

    @property
    def scheduling_spec(self) -> SchedulingSpec:
        return self.scheduling or SchedulingSpec()

    def scheduling_partitions(self) -> int:
        return self.scheduling_spec.partitions or self.defaults.partitions

    def producer_of(self, event: str) -> str | None:
        """The first producer that declares ``event`` (recurring ticks are published in
        its name)."""
        for service, spec in self.producers.items():
            if event in spec.publishes:
                return service
        return None

    def reply_topics(self) -> dict[str, str]:
        """Service -> its reply topic, for every producer that declares ``replies:``."""
        return {service: replies_topic_name(service)
                for service, spec in self.producers.items() if spec.replies is not None}

    @property
    def root(self) -> Path:
        """The directory that schema paths and handler modules are relative to."""
        return self.path.parent

    def line_of(self, path: Path_) -> int | None:
        """The line in the file where ``path`` (or its nearest ancestor) is declared."""
        return nearest_line(self.lines, path)

    def schema_file(self, event: str) -> Path:
        return self.root / self.events[event].schema_path

    def declared_events(self) -> list[DeclaredEvent]:
        """The events as the codec knows them: name, schema file, topic, compatibility."""
        return [DeclaredEvent(name, self.root / spec.schema_path, spec.topic, spec.compatibility)
                for name, spec in self.events.items()]

    @property
    def registry_url(self) -> str | None:
        """The schema registry events go through: ``$TIDINGS_SCHEMA_REGISTRY_URL``, else
        ``cluster.schema_registry_url``; None means single-object encoding."""
        from tidings.settings import Settings

        return Settings().schema_registry_url or self.cluster.schema_registry_url

    def codec(self, catalogue: SchemaCatalogue | None = None) -> Codec:
        """The wire format of this topology's events (registry or single-object)."""
        from tidings.codec import codec_for

        return codec_for(self.declared_events(), self.registry_url, catalogue,
                         auto_register=self.cluster.auto_register_schemas)

    def topics_of_consumer(self, group: str) -> list[str]:
        """The main topics a group reads, in the order its subscriptions name them."""
        seen: dict[str, None] = {}
        for event in self.consumers[group].subscribes:
            if event in self.events:  # an unknown event is a validation problem, reported there
                seen.setdefault(self.events[event].topic, None)
        return list(seen)

    def topic_config(self, topic: str) -> dict[str, str]:
        merged = {**self.defaults.config, **self.topics[topic].config}
        return {key: kafka_configs.normalize(key, value) for key, value in merged.items()}

    def config_source(self, topic: str, key: str) -> Path_ | None:
        """Where the value of topic config ``key`` of ``topic`` is declared, if anywhere."""
        if key in self.topics[topic].config:
            return ("topics", topic, "config", key)
        if key in self.defaults.config:
            return ("defaults", "config", key)
        return None

    def replication_source(self, topic: str) -> Path_:
        """Where the replication factor of ``topic`` is declared (or defaulted)."""
        if self.topics[topic].replication_factor:
            return ("topics", topic, "replication_factor")
        return ("defaults", "replication_factor")

    def refusal_source(self, path: Path_) -> Path_:
        """Where a refused layout change is declared: a topic's own ``partitions`` or
        ``replication_factor`` when it sets one, else the default it inherits."""
        if (len(path) == 3 and path[0] == "topics" and path[1] in self.topics
                and path[2] in ("partitions", "replication_factor")
                and getattr(self.topics[str(path[1])], str(path[2])) is None):
            return ("defaults", path[2])
        return path

    def dlq_config_of(self, group: str, topic: str) -> dict[str, str]:
        """The configs of ``group``'s dead-letter topic for ``topic``."""
        inherited = {key: value for key, value in self.topic_config(topic).items()
                     if key not in kafka_configs.COMPACTION_ONLY}
        own = {key: kafka_configs.normalize(key, value)
               for key, value in self.consumers[group].dlq_config.items()}
        return {**inherited, **own}

    def partitions_of(self, topic: str) -> int:
        return self.topics[topic].partitions or self.defaults.partitions

    def replication_of(self, topic: str) -> int:
        return self.topics[topic].replication_factor or self.defaults.replication_factor

    def desired_topics(self) -> list[DesiredTopic]:
        """Every topic the file implies: declared ones, then per group retry/DLQ/replay."""
        wanted = [
            DesiredTopic(
                name=topic,
                partitions=self.partitions_of(topic),
                replication_factor=self.replication_of(topic),
                config=self.topic_config(topic),
                origin="declared",
                source_path=("topics", topic),
            )
            for topic in self.topics
        ]
        for group, consumer in self.consumers.items():
            for topic in self.topics_of_consumer(group):
                wanted.extend(self._derived_for(topic, group, consumer))
        wanted.extend(self._scheduling_topics())
        wanted.extend(self._reply_topics())
        return wanted

    def _base_config(self, own: Mapping[str, object]) -> dict[str, str]:
        merged = {**self.defaults.config, **own}
        return {key: kafka_configs.normalize(key, value) for key, value in merged.items()}

    def _scheduling_topics(self) -> list[DesiredTopic]:
        names = self.scheduling_topics
        if names is None:
            return []
        spec = self.scheduling_spec
        partitions = self.scheduling_partitions()
        rf = self.defaults.replication_factor
        where: Path_ = ("scheduling",) if self.scheduling is not None else ("schedules",)

        def topic(name: str, origin: str, config: Mapping[str, object],
                  count: int = partitions) -> DesiredTopic:
            return DesiredTopic(name=name, partitions=count, replication_factor=rf,
                                config=self._base_config(config), origin=origin,
                                source_path=where, layout_at=where)

        slack = scheduling_names.SLACK_MS
        wanted = [topic(names.intake, "scheduled events",
                        {"retention.ms": slack, **spec.config})]
        wanted.extend(
            topic(name, f"scheduler tier {delay.label}",
                  {"retention.ms": delay.millis + slack, **spec.config})
            for delay, name in names.tiers)
        wanted.append(topic(names.cancelled, "schedule cancellations",
                            {"cleanup.policy": "compact,delete",
                             "retention.ms": spec.max_delay.millis + slack}))
        wanted.append(topic(names.state, "recurring schedules' state",
                            {"cleanup.policy": "compact"}, count=1))
        return wanted

    def _reply_topics(self) -> list[DesiredTopic]:
        wanted = []
        for service, name in self.reply_topics().items():
            spec = self.producers[service].replies
            assert spec is not None
            where: Path_ = ("producers", service, "replies")
            wanted.append(DesiredTopic(
                name=name, partitions=spec.partitions or self.defaults.partitions,
                replication_factor=self.defaults.replication_factor,
                config=self._base_config({"retention.ms": spec.retention.millis}),
                origin=f"replies to {service}", source_path=where, layout_at=where))
        return wanted

    def _derived_for(self, topic: str, group: str, consumer: ConsumerSpec) -> list[DesiredTopic]:
        # Copies keep the source's partition count so an event's key lands on the same
        # partition number, but never inherit compaction: two retries of one key are two
        # distinct deliveries and compaction would drop the older one.
        config = {
            key: value
            for key, value in self.topic_config(topic).items()
            if key not in kafka_configs.COMPACTION_ONLY
        }

        def derived(name: str, origin: str, path: Path_,
                    own: Mapping[str, str] | None = None) -> DesiredTopic:
            return DesiredTopic(
                name=name,
                partitions=self.partitions_of(topic),
                replication_factor=self.replication_of(topic),
                config=own if own is not None else config,
                origin=origin,
                source_path=path,
                parent=topic,
            )

        topics = [
            derived(
                retry_topic_name(topic, group, delay),
                f"retry tier {delay.label} of {group}",
                ("consumers", group, "retry", index),
            )
            for index, delay in enumerate(consumer.retry)
        ]
        if consumer.dlq:
            topics.append(
                derived(dlq_topic_name(topic, group), f"dead letters of {group}",
                        ("consumers", group, "dlq"), self.dlq_config_of(group, topic))
            )
        topics.append(
            derived(replay_topic_name(topic, group), f"replays for {group}",
                    ("consumers", group))
        )
        return topics

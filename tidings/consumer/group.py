"""Everything a consumer group needs, resolved once from topology.yaml at start."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tidings.codec import Codec, SchemaCatalogue, SchemaVersion
from tidings.consumer.retry import RetryPolicy
from tidings.db import Database
from tidings.errors import ConfigError
from tidings.imports import import_reference, on_sys_path
from tidings.producer.prepare import EventPreparer
from tidings.topology import Topology
from tidings.topology.model import ConsumerSpec
from tidings.topology.topology import replay_topic_name, retry_topic_name


@dataclass(frozen=True)
class GroupSetup:
    """A consumer group's resolved declaration (immutable, shared by all workers)."""

    topology: Topology
    group: str
    spec: ConsumerSpec
    database: Database
    handler: Callable[..., Any]
    setup_hook: Callable[[Any, Database], None] | None
    codec: Codec
    catalogue: SchemaCatalogue
    models: Mapping[str, Any]  # event type -> Event model (or None: handlers get dicts)
    readers: Mapping[str, SchemaVersion]  # event type -> the version the model mirrors
    policy: RetryPolicy
    #: Every topic the group reads -> the declared topic it derives from.
    source_topic: Mapping[str, str]
    preparer: EventPreparer | None  # set when the group also publishes (follow-up events)

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(self.spec.subscribes)

    @property
    def is_batch(self) -> bool:
        return self.spec.batch is not None

    @property
    def topics(self) -> list[str]:
        return list(self.source_topic)

    def is_retry_topic(self, topic: str) -> bool:
        return ".retry." in topic[len(self.source_topic[topic]):]


def resolve_group(topology: Topology, group: str, database: Database) -> GroupSetup:
    """Import the group's handler and models and derive the topics it reads."""
    if group not in topology.consumers:
        known = ", ".join(sorted(topology.consumers)) or "none"
        raise ConfigError(f"no consumer group {group!r} in {topology.path.name} "
                          f"(declared: {known})")
    spec = topology.consumers[group]
    handler = import_reference(spec.handler, topology.root)
    # A handler module may define setup(connection, database): tables, seed data.
    with on_sys_path(topology.root):
        module = importlib.import_module(spec.handler.split(":")[0])
    setup_hook = getattr(module, "setup", None)
    catalogue = SchemaCatalogue.from_events(topology.declared_events())
    models: dict[str, Any] = {}
    readers: dict[str, SchemaVersion] = {}
    for event in spec.subscribes:
        reference = topology.events[event].model
        model = import_reference(reference, topology.root) if reference else None
        models[event] = model
        version = getattr(model, "schema_version", None)
        readers[event] = (catalogue.version(event, version) if version
                          else catalogue.writer(event))
    source_topic: dict[str, str] = {}
    for topic in topology.topics_of_consumer(group):
        source_topic[topic] = topic
        for delay in spec.retry:
            source_topic[retry_topic_name(topic, group, delay)] = topic
        source_topic[replay_topic_name(topic, group)] = topic
    preparer = (EventPreparer(topology, group, catalogue=catalogue)
                if group in topology.producers else None)
    return GroupSetup(
        topology=topology, group=group, spec=spec, database=database, handler=handler,
        setup_hook=setup_hook if callable(setup_hook) else None,
        codec=topology.codec(catalogue),
        catalogue=catalogue, models=models,
        readers=readers, policy=RetryPolicy(group, spec.retry, spec.dlq),
        source_topic=source_topic, preparer=preparer,
    )

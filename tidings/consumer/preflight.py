"""Checks a consumer-group service makes before it joins its group.

Without them a service pointed at the wrong address logs "consuming …" and idles, and
one started before ``tidings topology apply`` has the broker auto-create its DLQ with
the broker's default settings (one partition), which the next plan then has to repair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tidings.consumer.group import GroupSetup
from tidings.errors import TidingsError
from tidings.kafka_clients import admin_client, fetch_metadata
from tidings.topology.topology import dlq_topic_name


class PreflightFailed(TidingsError):
    """The cluster is not ready for this group: topics missing or laid out otherwise."""


@dataclass(frozen=True)
class NeededTopic:
    """A topic the group reads or writes, and the partitions topology.yaml gives it."""

    name: str
    partitions: int
    line: int | None


def needed_topics(setup: GroupSetup) -> list[NeededTopic]:
    """Every topic the group reads (main, retry tiers, replay) and writes (retry, DLQ, and
    the topics of the follow-up events it publishes)."""
    topology = setup.topology
    names: dict[str, str] = {}  # topic -> the declared topic it is laid out like
    for topic, source in setup.source_topic.items():
        names[topic] = source
    if setup.spec.dlq:
        for source in set(setup.source_topic.values()):
            names[dlq_topic_name(source, setup.group)] = source
    if setup.group in topology.producers:
        for event in topology.producers[setup.group].publishes:
            if event in topology.events:
                topic = topology.events[event].topic
                names[topic] = topic
    return [NeededTopic(name, topology.partitions_of(source),
                        topology.line_of(("topics", source)))
            for name, source in sorted(names.items())]


def check_cluster(setup: GroupSetup, kafka_config: Mapping[str, Any],
                  timeout: float = 10.0) -> None:
    """Raise :class:`~tidings.errors.BrokerUnavailable` when no broker answers, and
    :class:`PreflightFailed` naming each topic that is missing or has other partitions
    than declared (with the way to fix it)."""
    bootstrap = str(kafka_config.get("bootstrap.servers", "?"))
    metadata = fetch_metadata(admin_client(kafka_config), bootstrap, timeout)
    topology = setup.topology
    missing: list[str] = []
    different: list[str] = []
    for topic in needed_topics(setup):
        found = metadata.topics.get(topic.name)
        if found is None or found.error is not None:
            missing.append(topic.name)
        elif len(found.partitions) != topic.partitions:
            where = f" ({topology.path.name}:{topic.line})" if topic.line else ""
            different.append(f"{topic.name} has {len(found.partitions)} partition(s), "
                             f"{topic.partitions} declared{where}")
    problems: list[str] = []
    username = kafka_config.get("sasl.username")
    if missing:
        # On a secure cluster a topic the principal has no ACL on is simply not listed.
        hidden = f" (or not visible to User:{username}: no ACL allows it)" if username else ""
        problems.append(f"missing on {bootstrap}{hidden}: {', '.join(missing)}")
    problems.extend(different)
    if problems:
        raise PreflightFailed(
            f"group {setup.group} cannot start: {'; '.join(problems)}. Run "
            f"`tidings topology plan -f {topology.path.name}` to see the changes and "
            "`tidings topology apply` to make them" + (" (topics and ACLs, as an admin)"
                                                       if username else ""))

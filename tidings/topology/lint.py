"""The production lint: settings that are legal, but unwise on a cluster people rely on.

Each finding is a warning at the line that sets the value (an environment's
override when it does); ``--strict`` makes them errors. It runs by default for any
environment not named ``local``: a laptop's single broker cannot meet it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from tidings.durations import Duration
from tidings.topology import kafka_configs
from tidings.topology.environments import LOCAL
from tidings.topology.source import Path_, Problem
from tidings.topology.topology import Topology, dlq_topic_name, retry_topic_name

MIN_REPLICATION = 3
MIN_INSYNC = 2

Warn = Callable[[Path_, str], None]


def lint_by_default(env: str) -> bool:
    """Whether the lint runs when neither ``--lint`` nor ``--no-lint`` is given."""
    return env != LOCAL


def lint_topology(topology: Topology) -> list[Problem]:
    """Every production-grade warning for ``topology`` (already validated)."""
    found: list[Problem] = []
    label = f"[{topology.env}] "

    def warn(path: Path_, message: str) -> None:
        found.append(Problem(topology.line_of(path), label + message, severity="warning"))

    _replication(topology, warn)
    _min_insync(topology, warn)
    _retention_against_retries(topology, warn)
    _dlq_retention(topology, warn)
    return found


def strict(problems: Iterable[Problem]) -> list[Problem]:
    """The same findings as errors (``--strict``)."""
    return [dataclasses.replace(p, severity="error") for p in problems]


def _by_source(topology: Topology, source_of: dict[str, Path_]) -> dict[Path_, list[str]]:
    """Topics grouped by where their value is declared, so a default is reported once."""
    grouped: dict[Path_, list[str]] = {}
    for topic in topology.topics:
        grouped.setdefault(source_of[topic], []).append(topic)
    return grouped


def _topics(names: list[str]) -> str:
    return (f"topic {names[0]!r}" if len(names) == 1
            else "topics " + ", ".join(repr(n) for n in names))


def _replication(topology: Topology, warn: Warn) -> None:
    sources = {t: topology.replication_source(t) for t in topology.topics}
    for path, topics in _by_source(topology, sources).items():
        replication = topology.replication_of(topics[0])
        if replication < MIN_REPLICATION:
            warn(path, f"{_topics(topics)}: replication factor {replication} is below "
                 f"{MIN_REPLICATION}; losing a broker can lose acknowledged events or stop "
                 "writes")


def _min_insync(topology: Topology, warn: Warn) -> None:
    key = "min.insync.replicas"
    sources = {t: topology.config_source(t, key) or ("defaults",) for t in topology.topics}
    for path, topics in _by_source(topology, sources).items():
        raw = topology.topic_config(topics[0]).get(key)
        if raw is None:
            warn(path, f"{_topics(topics)}: {key} is not set, so the broker default applies "
                 f"(1 unless the cluster sets it); set it to at least {MIN_INSYNC} so an "
                 "acknowledged write is on two brokers")
        elif int(raw) < MIN_INSYNC:
            warn(path, f"{_topics(topics)}: {key}={raw} is below {MIN_INSYNC}; an "
                 "acknowledged write may exist on one broker only")




def _retention_against_retries(topology: Topology, warn: Warn) -> None:
    # A retry tier's topic copies its source's retention: an event waiting out a tier
    # longer than that is deleted before it is due.
    for group, consumer in topology.consumers.items():
        if not consumer.retry:
            continue
        longest: Duration = max(consumer.retry)
        index = consumer.retry.index(longest)
        tier_line = topology.line_of(("consumers", group, "retry", index))
        for topic in topology.topics_of_consumer(group):
            retention = _retention(topology.topic_config(topic))
            if retention is None or retention >= longest.millis:
                continue
            where = topology.config_source(topic, "retention.ms") or ("topics", topic)
            warn(where, f"topic {topic!r}: retention.ms={int(retention)} "
                 f"({_span(retention)}) is shorter than {group}'s longest retry "
                 f"tier {longest.label} (line {tier_line}); an event waiting in "
                 f"{retry_topic_name(topic, group, longest)} is deleted before it is due")


def _dlq_retention(topology: Topology, warn: Warn) -> None:
    for group, consumer in topology.consumers.items():
        if not consumer.dlq or "retention.ms" not in consumer.dlq_config:
            continue
        for topic in topology.topics_of_consumer(group):
            kept = _retention(topology.dlq_config_of(group, topic))
            source = _retention(topology.topic_config(topic))
            if kept is None or source is None or kept >= source:
                continue  # an unset source retention is the broker's, which we cannot know
            warn(("consumers", group, "dlq_config", "retention.ms"),
                 f"{dlq_topic_name(topic, group)} keeps dead letters {_span(kept)}, less "
                 f"than its source topic {topic!r} keeps events ({_span(source)}); letters "
                 "would be gone before anyone could redrive them")


def _retention(config: Mapping[str, str]) -> float | None:
    raw = config.get("retention.ms")
    return kafka_configs.as_number("retention.ms", raw) if raw is not None else None


def _span(millis: float) -> str:
    return "forever" if millis == float("inf") else Duration(int(millis)).label

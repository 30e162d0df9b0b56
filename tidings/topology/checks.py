"""Cross-reference checks on a parsed topology: the mistakes pydantic cannot see alone."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from pydantic import ValidationError

from tidings.codec import compat
from tidings.codec.catalogue import load_raw, load_version, version_of
from tidings.codec.events import Event, model_problems
from tidings.imports import on_sys_path, resolve_reference
from tidings.settings import is_reference, reference_problem
from tidings.timing.placeholders import tick_data
from tidings.topology import kafka_configs
from tidings.topology.deploy_checks import check_deploy
from tidings.topology.model import EVENT_NAME, SERVICE_NAME, TOPIC_NAME, ScheduleSpec
from tidings.topology.source import Path_, Problem
from tidings.topology.topology import Topology

Report = Callable[[Path_, str], None]

SECRET_MARKERS = ("password", "secret", "token", "private.key", "key.pem", "credentials")


def check_topology(
    topology: Topology,
    *,
    broken: Mapping[str, set[str]],
    check_imports: bool,
    broker_count: int | None,
    check_compatibility: bool = True,
) -> list[Problem]:
    """Every cross-reference problem; ``broken`` names entries that already failed to parse,
    so that referring to them is not reported a second time."""
    problems: list[Problem] = []

    def report(path: Path_, message: str) -> None:
        problems.append(Problem(topology.line_of(path), message))

    _check_names(topology, report)
    _check_configs(topology, report)
    _check_cluster(topology, report)
    _check_events(topology, broken, report)
    _check_references(topology, broken, report)
    _check_schedules(topology, broken, report, check_imports=check_imports)
    check_deploy(topology, report)
    if check_imports:
        _check_handlers(topology, report)
    if not problems:
        # Deriving topic names needs sound configs and references; skip it otherwise.
        _check_derived_names(topology, report)
    if broker_count is not None:
        check_replication(topology, broker_count, report)
    sound = _events_with_sound_schema(topology)
    if check_compatibility:
        _check_schema_versions(topology, sound, report)
    if check_imports:
        _check_models(topology, sound, report)
    return problems



def _did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_names(topology: Topology, report: Report) -> None:
    for topic in topology.topics:
        if not TOPIC_NAME.match(topic):
            report(("topics", topic),
                   f"topic name {topic!r} is not valid in Kafka: use letters, digits, '.', '_', "
                   "'-' (at most 249)")
    for event in topology.events:
        if not EVENT_NAME.match(event):
            report(("events", event),
                   f"event name {event!r} must be lower case letters, digits, '.', '_' or '-'")
    for section in ("producers", "consumers"):
        for name in getattr(topology, section):
            if not SERVICE_NAME.match(name):
                report((section, name),
                       f"{section[:-1]} name {name!r} must be letters, digits, '_' or '-'")


def _config_sources(topology: Topology) -> Iterator[tuple[Path_, Mapping[str, object]]]:
    yield ("defaults", "config"), topology.defaults.config
    for topic, spec in topology.topics.items():
        yield ("topics", topic, "config"), spec.config
    for group, consumer in topology.consumers.items():
        yield ("consumers", group, "dlq_config"), consumer.dlq_config
    if topology.scheduling is not None:
        yield ("scheduling", "config"), topology.scheduling.config


def _check_configs(topology: Topology, report: Report) -> None:
    for base, config in _config_sources(topology):
        for key, value in config.items():
            path = (*base, key)
            if key not in kafka_configs.KNOWN:
                report(path, f"unknown topic config {key!r}"
                       f"{_did_you_mean(key, kafka_configs.KNOWN)}")
                continue
            try:
                kafka_configs.normalize(key, value)
            except ValueError as exc:
                report(path, str(exc))
            if base[0] == "consumers" and key in kafka_configs.COMPACTION_ONLY:
                report(path, f"{key} cannot be set on a dead-letter topic: two failures of "
                       "one key are two letters, and compaction would drop the older one")
    for topic, spec in topology.topics.items():
        replication = spec.replication_factor or topology.defaults.replication_factor
        merged = {**topology.defaults.config, **spec.config}
        raw = merged.get("min.insync.replicas")
        if raw is None:
            continue
        try:
            min_isr = int(kafka_configs.normalize("min.insync.replicas", raw))
        except ValueError:
            continue
        where = topology.config_source(topic, "min.insync.replicas") or ("topics", topic)
        if min_isr > replication:
            report(where, f"topic {topic!r}: min.insync.replicas={min_isr} is more than its "
                   f"replication factor {replication}; no write with acks=all could succeed")
        elif min_isr == replication > 1:
            report(where, f"topic {topic!r}: min.insync.replicas={min_isr} equals its "
                   f"replication factor; with one broker down no write with acks=all "
                   f"succeeds (use at most {replication - 1})")


def _check_cluster(topology: Topology, report: Report) -> None:
    services = [*topology.producers, *topology.consumers]
    for service in topology.cluster.principals:
        if service not in services:
            report(("cluster", "principals", service),
                   f"cluster.principals names {service!r}, which is neither a producer nor a "
                   f"consumer{_did_you_mean(service, services)}")
    cluster = topology.cluster
    settings: list[tuple[Path_, object]] = [
        (("cluster", "bootstrap_servers"), cluster.bootstrap_servers),
        (("cluster", "schema_registry_url"), cluster.schema_registry_url),
        *((("cluster", "properties", key), value) for key, value in cluster.properties.items()),
    ]
    for path, value in settings:
        problem = reference_problem(value)
        if problem:
            report(path, f"{'.'.join(str(p) for p in path)}: {problem}")
    for key, value in cluster.properties.items():
        if key == "partitioner":
            report(("cluster", "properties", key),
                   "set the partitioner as cluster.partitioner, not under properties, so "
                   "`topology plan` can warn when it changes")
            continue
        # A reference to the environment holds no secret, so it is fine for a secret.
        if any(marker in key.lower() for marker in SECRET_MARKERS) and not is_reference(value):
            env = "TIDINGS_KAFKA_" + key.upper().replace(".", "_")
            report(("cluster", "properties", key),
                   f"{key} looks like a secret; secrets come from the environment "
                   f"(set {env}), never from topology.yaml; or refer to a variable "
                   f"there: {key}: ${{NAME}}")


def _check_events(
    topology: Topology, broken: Mapping[str, set[str]], report: Report
) -> None:
    declared_topics = set(topology.topics) | broken.get("topics", set())
    for event, spec in topology.events.items():
        if spec.topic not in declared_topics:
            report(("events", event, "topic"),
                   f"event {event!r} is on topic {spec.topic!r}, which is not declared under "
                   f"topics{_did_you_mean(spec.topic, declared_topics)}")
        schema_path = topology.root / spec.schema_path
        where = ("events", event, "schema")
        if not schema_path.is_file():
            report(where, f"schema file {spec.schema_path!r} does not exist "
                   f"(paths are relative to {topology.path.name}'s directory)")
            continue
        fields = _schema_fields(schema_path, spec.schema_path, where, report)
        if fields is not None and spec.key is not None and spec.key not in fields:
            report(("events", event, "key"),
                   f"key {spec.key!r} is not a field of {spec.schema_path}"
                   f"{_did_you_mean(spec.key, fields)}")


def _schema_fields(
    path: Path, shown: str, where: Path_, report: Report
) -> list[str] | None:
    import fastavro

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        report(where, f"{shown} is not valid JSON: {exc.msg} at its line {exc.lineno}")
        return None
    try:
        fastavro.parse_schema(raw)
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        report(where, f"{shown} is not a valid Avro schema: {exc}")
        return None
    if not isinstance(raw, dict) or raw.get("type") != "record":
        report(where, f"{shown} must be an Avro record schema")
        return None
    return [str(f.get("name")) for f in raw.get("fields", []) if isinstance(f, dict)]


def _check_references(
    topology: Topology, broken: Mapping[str, set[str]], report: Report
) -> None:
    known = set(topology.events) | broken.get("events", set())
    for section, verb, attr in (("producers", "publishes", "publishes"),
                                ("consumers", "subscribes to", "subscribes")):
        for name, spec in getattr(topology, section).items():
            seen: set[str] = set()
            for index, event in enumerate(getattr(spec, attr)):
                path = (section, name, attr, index)
                if event in seen:
                    report(path, f"{name} {verb} {event!r} twice")
                seen.add(event)
                if event not in known:
                    report(path, f"{section[:-1]} {name!r} {verb} unknown event {event!r}"
                           f"{_did_you_mean(event, known)}")
    for name, consumer in topology.consumers.items():
        labels: dict[str, int] = {}
        for index, delay in enumerate(consumer.retry):
            if delay.label in labels:
                report(("consumers", name, "retry", index),
                       f"retry tier {delay.label} of {name!r} is listed twice "
                       f"(tiers {labels[delay.label] + 1} and {index + 1})")
            labels.setdefault(delay.label, index)


#: ``tidings run scheduler`` runs the scheduler; a consumer group of that name could not run.
RESERVED_GROUPS = frozenset({"scheduler"})


def _check_schedules(topology: Topology, broken: Mapping[str, set[str]], report: Report,
                     *, check_imports: bool) -> None:
    for group in topology.consumers:
        if group in RESERVED_GROUPS:
            report(("consumers", group), f"consumer name {group!r} is reserved for "
                   "`tidings run scheduler`; choose another name")
    known = set(topology.events) | broken.get("events", set())
    for name, spec in topology.schedules.items():
        where = ("schedules", name, "event")
        if spec.event not in known:
            report(where, f"schedule {name!r} emits unknown event {spec.event!r}"
                   f"{_did_you_mean(spec.event, known)}")
            continue
        if spec.event not in topology.events:
            continue  # the event's own entry is broken, and reported there
        if topology.producer_of(spec.event) is None:
            report(where, f"schedule {name!r} emits {spec.event!r}, which no producer "
                   "declares; add it under producers.<service>.publishes (ticks are "
                   "published in that service's name)")
        _check_schedule_data(topology, name, spec, report, check_imports=check_imports)


def _check_schedule_data(topology: Topology, name: str, spec: ScheduleSpec, report: Report,
                         *, check_imports: bool) -> None:
    where = ("schedules", name, "data")
    event = topology.events[spec.event]
    data = tick_data(spec.data, 0, spec.timezone)
    if check_imports and event.model:
        with on_sys_path(topology.root):
            model, problem = resolve_reference(event.model, "model")
        if problem is not None or not isinstance(model, type) or not issubclass(model, Event):
            return  # reported under events
        try:
            model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(str(part) for part in first["loc"]) or "data"
            report(where, f"schedule {name!r}: data does not make a valid {spec.event}: "
                   f"{at}: {first['msg']}")
        return
    path = topology.root / event.schema_path
    if not path.is_file():
        return
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        fields = {str(f["name"]): "default" in f for f in raw.get("fields", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        return  # reported under events
    for key in spec.data:
        if key not in fields:
            report(where, f"schedule {name!r}: {key!r} is not a field of {spec.event}"
                   f"{_did_you_mean(key, fields)}")
    for field_name, has_default in fields.items():
        if field_name not in spec.data and not has_default:
            report(where, f"schedule {name!r}: data needs {field_name!r} (a field of "
                   f"{spec.event} without a default)")


def _check_handlers(topology: Topology, report: Report) -> None:
    with on_sys_path(topology.root):
        for name, consumer in topology.consumers.items():
            problem = handler_import_problem(consumer.handler)
            if problem:
                report(("consumers", name, "handler"), problem)


def handler_import_problem(reference: str) -> str | None:
    """Why ``module:function`` cannot be used as a handler, or None when it can."""
    target, problem = resolve_reference(reference, "handler")
    if problem is None and not callable(target):
        return f"handler {reference!r} is not callable"
    return problem


def _events_with_sound_schema(topology: Topology) -> dict[str, Path]:
    """Events whose current schema file exists and parses; the others are reported by
    :func:`_check_events` already, and checking them again would only repeat that."""
    sound: dict[str, Path] = {}
    for event, spec in topology.events.items():
        path = topology.root / spec.schema_path
        try:
            load_version(event, 0, path)  # only "does it parse" matters, not the number
        except ValueError:
            continue
        sound[event] = path
    return sound


def _check_schema_versions(
    topology: Topology, sound: Mapping[str, Path], report: Report
) -> None:
    declared = {item.name: item for item in topology.declared_events()}
    for event in sound:
        for finding in compat.check_event(declared[event]):
            if finding.severity == "error":
                report(("events", event, "schema"), finding.message)


def _check_models(topology: Topology, sound: Mapping[str, Path], report: Report) -> None:
    with on_sys_path(topology.root):
        for event, spec in topology.events.items():
            if spec.model is None:
                continue
            where = ("events", event, "model")
            model, problem = resolve_reference(spec.model, "model")
            if problem is None:
                problem = _model_class_problem(spec.model, model, event)
            if problem is not None:
                report(where, problem)
                continue
            if event not in sound:
                continue
            named = version_of(sound[event])
            version = getattr(model, "schema_version", None)
            if named is not None and version != named[1]:
                report(where, f"model {spec.model!r} mirrors schema v{version}, but the "
                       f"topology writes v{named[1]} ({spec.schema_path})")
            assert isinstance(model, type)  # _model_class_problem checked it
            for message in model_problems(model, load_raw(sound[event])):
                report(where, f"model {spec.model!r} disagrees with {spec.schema_path}: "
                       f"{message}")


def _model_class_problem(reference: str, model: object, event: str) -> str | None:
    if not (isinstance(model, type) and issubclass(model, Event)):
        return f"model {reference!r} is not a subclass of tidings.Event"
    declared = getattr(model, "event_type", None)
    if declared != event:
        return (f"model {reference!r} is for event {declared!r}, not {event!r}"
                if declared else f"model {reference!r} does not set event_type")
    return None


def _check_derived_names(topology: Topology, report: Report) -> None:
    if any(spec.topic not in topology.topics for spec in topology.events.values()):
        return  # already reported; deriving from an undeclared topic would add noise
    owners: dict[str, str] = {}
    for wanted in topology.desired_topics():
        if wanted.name in owners:
            report(wanted.source_path,
                   f"topic {wanted.name!r} ({wanted.origin}) clashes with {owners[wanted.name]}")
            continue
        if len(wanted.name) > 249:
            report(wanted.source_path, f"derived topic name {wanted.name!r} is longer than 249")
        owners[wanted.name] = f"the topic of the same name ({wanted.origin})"


def check_replication(
    topology: Topology, broker_count: int, report: Report
) -> None:
    plural = "s" if broker_count != 1 else ""
    for topic, spec in topology.topics.items():
        replication = spec.replication_factor or topology.defaults.replication_factor
        if replication > broker_count:
            path = (("topics", topic, "replication_factor") if spec.replication_factor
                    else ("defaults", "replication_factor"))
            report(path, f"topic {topic!r}: replication factor {replication} is larger than "
                   f"the cluster ({broker_count} broker{plural})")

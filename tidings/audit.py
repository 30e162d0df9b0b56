"""The audit log: who did what to the cluster, when, with which plan, and how it ended.

Kept on the cluster itself, in the compacted topic ``__tidings_audit`` (one partition,
so the log has one order). Each action has its own key: it is written once when it
starts (outcome ``started``) and again when it ends, and compaction keeps the last
word on each action. An action whose start cannot be recorded does not run.
"""

from __future__ import annotations

import getpass
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from tidings.kafka_clients import with_logger
from tidings.producer.reliable import RELIABLE_DEFAULTS
from tidings.replay.cluster import Cluster, ReplayError

AUDIT_TOPIC = "__tidings_audit"


@dataclass(frozen=True)
class AuditRecord:
    """One action as the log keeps it."""

    id: str
    at_ms: int  # when it started
    who: str
    role: str
    via: str  # "console" or "cli"
    action: str  # e.g. "dlq.redrive", "replay", "topology.apply"
    target: str  # the group or topology it acts on
    plan: str  # the plan as shown to the operator
    outcome: str  # "started", "done: ...", "failed: ...", "refused: ..."
    finished_ms: int | None = None

    @property
    def at(self) -> str:
        return _iso(self.at_ms)

    @property
    def status(self) -> str:
        """``started``, ``done``, ``failed`` or ``refused``."""
        return self.outcome.split(":", 1)[0]


def new_record(*, who: str, role: str, via: str, action: str, target: str,
               plan: str) -> AuditRecord:
    return AuditRecord(f"a-{uuid.uuid4().hex[:16]}", _now_ms(), who, role, via, action,
                       target, plan, "started")


class AuditLog:
    """Writes and reads ``__tidings_audit`` on the cluster of ``cluster``."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._ready = False

    def start(self, record: AuditRecord) -> AuditRecord:
        """Record that an action starts; raises (and the action must not run) if the
        broker does not take it."""
        self._write(record)
        return record

    def finish(self, record: AuditRecord, outcome: str) -> AuditRecord:
        done = replace(record, outcome=outcome, finished_ms=_now_ms())
        self._write(done)
        return done

    def refused(self, *, who: str, role: str, via: str, action: str, target: str,
                plan: str, why: str) -> AuditRecord:
        """Record an action that was refused before it changed anything."""
        record = replace(new_record(who=who, role=role, via=via, action=action,
                                    target=target, plan=plan),
                         outcome=f"refused: {why}", finished_ms=_now_ms())
        self._write(record)
        return record

    def records(self, limit: int = 200) -> list[AuditRecord]:
        """The latest ``limit`` actions, newest first."""
        cluster = self.cluster
        if AUDIT_TOPIC not in cluster.admin.list_topics(timeout=cluster.timeout).topics:
            return []
        low, high = cluster.watermarks(AUDIT_TOPIC, [0])[0]
        latest: dict[str, AuditRecord] = {}
        for message in cluster.read_range(AUDIT_TOPIC, {0: (low, high)}):
            value = message.value()
            key = (message.key() or b"").decode()
            if not value:
                latest.pop(key, None)
                continue
            try:
                latest[key] = AuditRecord(**json.loads(value))
            except (TypeError, ValueError):
                continue  # a record this version cannot read
        return sorted(latest.values(), key=lambda r: r.at_ms, reverse=True)[:limit]

    def _write(self, record: AuditRecord) -> None:
        self._ensure_topic()
        producer = Producer(with_logger({**self.cluster.config, **RELIABLE_DEFAULTS}))
        errors: list[str] = []
        producer.produce(AUDIT_TOPIC, key=record.id.encode(),
                         value=json.dumps(asdict(record), sort_keys=True).encode(),
                         on_delivery=lambda err, _m: errors.append(err.str()) if err else None)
        if producer.flush(self.cluster.timeout) > 0 or errors:
            raise ReplayError(f"could not record the action in {AUDIT_TOPIC}: "
                              f"{errors[0] if errors else 'timed out'}; nothing was changed")

    def _ensure_topic(self) -> None:
        if self._ready:
            return
        cluster = self.cluster
        if AUDIT_TOPIC not in cluster.admin.list_topics(timeout=cluster.timeout).topics:
            topic = NewTopic(AUDIT_TOPIC, num_partitions=1,
                             replication_factor=min(3, max(1, cluster.brokers())),
                             config={"cleanup.policy": "compact"})
            future = cluster.admin.create_topics([topic], request_timeout=cluster.timeout)
            try:
                future[AUDIT_TOPIC].result(timeout=cluster.timeout)
            except KafkaException as exc:
                error = exc.args[0]
                if not isinstance(error, KafkaError) or \
                        error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ReplayError(f"cannot create {AUDIT_TOPIC}: {exc}") from None
            deadline = time.monotonic() + cluster.timeout
            while time.monotonic() < deadline:  # the new topic's leader takes a moment
                try:
                    cluster.watermarks(AUDIT_TOPIC, [0])
                    break
                except ReplayError:
                    time.sleep(0.2)
        self._ready = True


def cli_user() -> str:
    """Who runs a CLI command: the login name, as far as the OS knows it."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (a bare container)
        return "unknown"


def _iso(moment_ms: int) -> str:
    moment = datetime.fromtimestamp(moment_ms / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _now_ms() -> int:
    return int(time.time() * 1000)


def describe(data: dict[str, Any]) -> str:
    """A compact one-line rendering of parameters, for an audit record's plan."""
    return ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, "", [], False))


@contextmanager
def recorded(cluster: Cluster, *, action: str, target: str, plan: str,
             via: str = "cli", who: str | None = None,
             role: str = "operator") -> Iterator[list[str]]:
    """Record an action around its execution: ``started`` before (if that cannot be
    written, the action does not run), then the outcome the block appends to the list
    it is given (``done: ...``), or ``failed: ...`` when it raises."""
    log = AuditLog(cluster)
    record = log.start(new_record(who=who or cli_user(), role=role, via=via, action=action,
                                  target=target, plan=plan))
    outcome: list[str] = []
    try:
        yield outcome
    except BaseException as exc:
        log.finish(record, f"failed: {exc or type(exc).__name__}")
        raise
    log.finish(record, f"done: {outcome[-1] if outcome else 'finished'}")

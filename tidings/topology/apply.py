"""Carry out a plan on the cluster: exactly the changes it lists, in its order."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from tidings.errors import TidingsError
from tidings.topology.live import acl_binding, acl_filter
from tidings.topology.plan import Change, ChangeKind, Plan


class ApplyFailed(TidingsError):
    """Some changes were made and one failed; the message lists both."""


@dataclass
class ApplyResult:
    done: list[Change] = field(default_factory=list)


def apply_plan(admin: AdminClient, plan: Plan, *, timeout: float) -> ApplyResult:
    """Run every change of ``plan``; stop at the first failure and say what was done."""
    result = ApplyResult()
    for kind in (ChangeKind.CREATE, ChangeKind.ADD_PARTITIONS, ChangeKind.SET_CONFIG,
                 ChangeKind.UNSET_CONFIG, ChangeKind.ADD_ACL, ChangeKind.REMOVE_ACL,
                 ChangeKind.DELETE):
        batch = [c for c in plan.changes if c.kind is kind]
        if not batch:
            continue
        try:
            _run(admin, kind, batch, timeout)
        except KafkaException as exc:
            error = exc.args[0]
            message = error.str() if hasattr(error, "str") else str(error)
            done = ", ".join(c.summary for c in result.done) or "nothing"
            raise ApplyFailed(
                f"{kind.value} failed: {message}. Done before the failure: {done}. "
                "Run plan again to see what remains."
            ) from None
        result.done.extend(batch)
    _wait_until_visible(admin, [c for c in result.done if c.kind in
                                (ChangeKind.CREATE, ChangeKind.ADD_PARTITIONS)],
                        [c.topic for c in result.done if c.kind is ChangeKind.DELETE], timeout)
    return result


def _run(admin: AdminClient, kind: ChangeKind, batch: list[Change], timeout: float) -> None:
    futures: Mapping[Any, Future[Any]]
    if kind is ChangeKind.CREATE:
        futures = admin.create_topics(
            [NewTopic(c.topic, num_partitions=c.partitions or 1,
                      replication_factor=c.replication_factor or 1, config=dict(c.config))
             for c in batch],
            request_timeout=timeout,
        )
    elif kind is ChangeKind.ADD_PARTITIONS:
        futures = admin.create_partitions(
            [NewPartitions(c.topic, c.partitions or 1) for c in batch], request_timeout=timeout
        )
    elif kind is ChangeKind.DELETE:
        futures = admin.delete_topics([c.topic for c in batch], request_timeout=timeout)
    elif kind is ChangeKind.ADD_ACL:
        futures = admin.create_acls([acl_binding(c.acl) for c in batch if c.acl],
                                    request_timeout=timeout)
    elif kind is ChangeKind.REMOVE_ACL:
        futures = admin.delete_acls([acl_filter(c.acl) for c in batch if c.acl],
                                    request_timeout=timeout)
    else:
        futures = admin.incremental_alter_configs(
            list(_config_resources(batch)), request_timeout=timeout
        )
    for future in futures.values():
        future.result(timeout=timeout + 5)


def _config_resources(batch: Iterable[Change]) -> Iterable[ConfigResource]:
    by_topic: dict[str, list[ConfigEntry]] = {}
    for change in batch:
        op = (AlterConfigOpType.SET if change.kind is ChangeKind.SET_CONFIG
              else AlterConfigOpType.DELETE)
        by_topic.setdefault(change.topic, []).append(
            ConfigEntry(change.key or "", change.new, incremental_operation=op)
        )
    for topic, entries in by_topic.items():
        yield ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)


def _wait_until_visible(
    admin: AdminClient, grown: list[Change], deleted: list[str], timeout: float
) -> None:
    # Topic creation is acknowledged by the controller before every broker's metadata
    # shows it; wait so that a plan run right after apply sees the new state.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        # Visible is not enough: until each partition has a leader, reads and offset
        # lookups right after apply fail with NOT_LEADER_FOR_PARTITION.
        pending = [c for c in grown if c.topic not in topics
                   or len(topics[c.topic].partitions) < (c.partitions or 0)
                   or any(p.leader < 0 or p.error is not None
                          for p in topics[c.topic].partitions.values())]
        pending_deletes = [name for name in deleted if name in topics]
        if not pending and not pending_deletes:
            return
        time.sleep(0.2)

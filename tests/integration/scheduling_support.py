"""A throwaway topology with scheduling, an in-process scheduler, and a committed reader."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from runtime_support import running

from tidings.scheduling.dispatcher import Scheduler, SchedulerOptions
from tidings.testing.clock import ManualClock
from tidings.topology import Topology, load_topology, sync

REPO = Path(__file__).resolve().parents[2]

TEMPLATE = """\
name: {p}shop
defaults: {{partitions: 3, replication_factor: 1}}
topics:
  {p}orders: {{}}
events:
  order.created:
    topic: {p}orders
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas.models:OrderCreated
producers:
  {p}shop: {{publishes: [order.created]}}
scheduling: {{partitions: 3}}
{extra}"""


@dataclass
class SchedShop:
    root: Path
    prefix: str
    topology: Topology

    @property
    def orders(self) -> str:
        return f"{self.prefix}orders"

    @property
    def service(self) -> str:
        return f"{self.prefix}shop"

    @property
    def path(self) -> Path:
        return self.topology.path


def make_sched_shop(root: Path, extra: str = "") -> SchedShop:
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    if not (root / "schemas").exists():
        shutil.copytree(REPO / "schemas", root / "schemas",
                        ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "topology.yaml"
    path.write_text(TEMPLATE.format(p=prefix, extra=extra.replace("{p}", prefix)))
    topology = load_topology(path)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    return SchedShop(root, prefix, topology)


def kafka_config() -> dict[str, str]:
    return {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]}


@contextmanager
def scheduler_running(topology: Topology, clock: ManualClock | None = None,
                      instance: str | None = None) -> Iterator[Scheduler]:
    """A scheduler in a thread of this process, stopped (gracefully) after the block."""
    options = SchedulerOptions(instance_id=instance, waiting_interval=1.0,
                               session_timeout_ms=6000)
    if clock is not None:
        options.clock = clock
    with running(Scheduler(topology, kafka_config(), options)) as scheduler:
        yield scheduler


class CommittedReader:
    """Reads a topic as consumers do (read_committed), from its beginning, keeping all."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.messages: list[Message] = []
        self._consumer = Consumer({
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"reader-{uuid.uuid4()}", "enable.auto.commit": False,
            "isolation.level": "read_committed"})
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])

    def poll(self) -> int:
        """Read what is there now; returns how many messages were read so far."""
        for message in self._consumer.consume(500, timeout=0.2):
            error = message.error()
            if error is None:
                self.messages.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                raise AssertionError(error.str())
        return len(self.messages)

    def header(self, index: int, name: str) -> str:
        return dict(self.messages[index].headers() or [])[name].decode()

    def event_ids(self) -> list[str]:
        return [self.header(i, "event-id") for i in range(len(self.messages))]

    def close(self) -> None:
        self._consumer.close()

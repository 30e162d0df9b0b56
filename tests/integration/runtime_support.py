"""A consumer group with a test handler whose behaviour each event chooses."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.topology import Topology, load_topology, sync

REPO = Path(__file__).resolve().parents[2]

HANDLER = '''
"""Test handler: event.customer_id says how to behave."""
import time
from tidings.consumer import NonRetryableError


def setup(connection, database):
    connection.execute(
        "CREATE TABLE IF NOT EXISTS effects (event_id TEXT, order_id TEXT, customer TEXT, "
        "attempt INTEGER, seq INTEGER, done_at_ms INTEGER)")


def handle(event, ctx):
    behaviour = event.customer_id.split(":")[0]
    if behaviour == "fail-twice" and ctx.attempt <= 2:
        raise RuntimeError(f"transient failure on attempt {ctx.attempt}")
    if behaviour == "fail-always":
        raise RuntimeError("always broken")
    if behaviour == "non-retryable":
        raise NonRetryableError("this order can never be handled")
    if behaviour == "slow":
        time.sleep(0.05)
    ctx.db.execute(ctx.sql("INSERT INTO effects VALUES (?, ?, ?, ?, ?, ?)"), (
        ctx.event_id, event.order_id, event.customer_id, ctx.attempt, event.total_cents,
        int(time.time() * 1000)))


def handle_batch(events, ctx):
    for event, item in zip(events, ctx.items):
        if event.customer_id == "fail-always":
            raise RuntimeError("a poisoned batch")
        ctx.db.execute(ctx.sql("INSERT INTO effects VALUES (?, ?, ?, ?, ?, ?)"), (
            item.meta.event_id, event.order_id, event.customer_id, item.meta.attempt,
            len(events), int(time.time() * 1000)))
'''

TEMPLATE = """\
name: {name}
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
  order-service: {{publishes: [order.created]}}
consumers:
  {p}worker:
    subscribes: [order.created]
    handler: {module}:{function}
    retry: [1s, 2s]
    concurrency: {concurrency}
{extra}"""


@dataclass
class Group:
    root: Path
    prefix: str
    topology: Topology
    name: str
    database_url: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}orders"

    def effects(self) -> list[tuple[Any, ...]]:
        connection = open_database(self.database_url).connect()
        try:
            return list(connection.execute(
                "SELECT event_id, order_id, customer, attempt, seq, done_at_ms FROM effects "
                "ORDER BY rowid").fetchall())
        except Exception:  # table not created yet
            return []
        finally:
            connection.close()

    def runtime(self, **options: Any) -> ConsumerRuntime:
        setup = resolve_group(self.topology, self.name, open_database(self.database_url))
        import os
        return ConsumerRuntime(setup, {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]},
                               RuntimeOptions(**options))


def make_group(root: Path, *, concurrency: int = 1, batch: bool = False) -> Group:
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    if not (root / "schemas").exists():
        shutil.copytree(REPO / "schemas", root / "schemas",
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    module = f"handlers_{prefix.strip('-')}"
    (root / f"{module}.py").write_text(HANDLER)
    extra = "    batch: {max_events: 50, max_wait: 500ms}\n" if batch else ""
    path = root / "topology.yaml"
    path.write_text(TEMPLATE.format(
        name=f"it-{prefix}", p=prefix, module=module,
        function="handle_batch" if batch else "handle", concurrency=concurrency, extra=extra))
    topology = load_topology(path)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    return Group(root, prefix, topology, f"{prefix}worker",
                 f"sqlite:///{root / 'worker.db'}")


class Runnable(Protocol):
    """A service loop: ``run()`` until ``stop()`` (a consumer runtime, a scheduler)."""

    def run(self) -> None: ...

    def stop(self) -> None: ...


R = TypeVar("R", bound=Runnable)


@contextmanager
def running(runtime: R) -> Iterator[R]:
    """Run ``runtime`` in a thread; stop it (gracefully) when the block ends."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            runtime.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), f"{type(runtime).__name__} did not stop"
    if failure:
        raise failure[0]



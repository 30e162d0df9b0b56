"""How late the scheduler delivers, measured (not a test): a burst of delayed events
(delays spread over 0-3 s, the sub-second tiers' range) through one in-process
scheduler on the wall clock; lateness = the delivered record's timestamp minus its
``deliver-at``.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:28200 .venv/bin/python -m benchmarks.scheduler [N]

Needs a running broker (``tidings dev up``); creates throwaway topics with a unique
prefix. Never early is what the tests assert; this prints how late (min, p50, p90,
p99, max in ms), which depends on the machine's load.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from schemas import LineItem, OrderCreated
from tidings.producer.publisher import Publisher
from tidings.scheduling.dispatcher import Scheduler, SchedulerOptions
from tidings.topology import load_topology, sync

REPO = Path(__file__).resolve().parents[1]

TOPOLOGY = """\
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
"""


def an_order() -> OrderCreated:
    return OrderCreated(order_id=str(uuid.uuid4()), customer_id="c-1",
                        customer_email="ada@example.com", currency="EUR",
                        items=[LineItem(sku="SKU-1", quantity=1, unit_price_cents=100)],
                        total_cents=100, created_at=datetime.now(UTC))


def read_all(bootstrap: str, topic: str, expect: int, timeout: float) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    found: list[Message] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout
        while len(found) < expect and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.2):
                error = message.error()
                if error is None:
                    found.append(message)
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise SystemExit(error.str())
    finally:
        consumer.close()
    return found


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    root = Path(tempfile.mkdtemp(prefix="tidings-bench-scheduler-"))
    try:
        shutil.copytree(REPO / "schemas", root / "schemas",
                        ignore=shutil.ignore_patterns("__pycache__"))
        prefix = f"b{uuid.uuid4().hex[:8]}-"
        path = root / "topology.yaml"
        path.write_text(TOPOLOGY.format(p=prefix))
        topology = load_topology(path)
        view = sync.connect(topology)
        sync.apply(view, sync.plan(view))
        scheduler = Scheduler(topology, {"bootstrap.servers": bootstrap},
                              SchedulerOptions(session_timeout_ms=6000))
        thread = threading.Thread(target=scheduler.run, daemon=True)
        thread.start()
        while not scheduler.assigned:
            if not thread.is_alive():
                raise SystemExit("the scheduler stopped (see its log)")
            time.sleep(0.1)
        rng = random.Random(15)
        with Publisher(topology, f"{prefix}shop") as publisher:
            for _ in range(count):
                publisher.publish(an_order(), delay=timedelta(seconds=rng.uniform(0, 3)))
        delivered = read_all(bootstrap, f"{prefix}orders", count, 60)
        scheduler.stop()
        thread.join(60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    late = sorted(m.timestamp()[1] - int(dict(m.headers() or [])["deliver-at"])
                  for m in delivered)
    if not late:
        raise SystemExit("nothing was delivered")
    print(f"{len(late)}/{count} delivered, delays 0-3 s; lateness ms: min {late[0]} "
          f"p50 {statistics.median(late):.0f} p90 {late[int(len(late) * 0.9)]} "
          f"p99 {late[int(len(late) * 0.99)]} max {late[-1]}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

"""What tracing costs the publish and consume hot paths when no SDK is configured.

    python benchmarks/tracing_overhead.py prepare 20000     # EventPreparer.prepare
    python benchmarks/tracing_overhead.py handle 20000      # EventProcessor.handle, per event
    python benchmarks/tracing_overhead.py prepare 20000 --sdk   # with an SDK provider

Prints the CPU time (``time.thread_time``) per event, the best of several rounds. Run it
with ``PYTHONPATH`` at two checkouts to compare them (it uses only APIs both have), or
under ``valgrind --tool=callgrind`` with N and 0 events for instruction counts: the
difference divided by N is the per-event cost. No broker is needed: handled messages are
built in memory, and the retry producer never sends.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def order(n: int) -> Any:
    from schemas import LineItem, OrderCreated
    return OrderCreated(order_id=f"o-{n}", customer_id="c-1", customer_email="a@example.com",
                        currency="EUR", items=[LineItem(sku="SKU-1", quantity=2,
                                                        unit_price_cents=1250)],
                        total_cents=2500, created_at=datetime(2026, 1, 1, tzinfo=UTC))


def bench_prepare(n: int, rounds: int) -> float:
    from tidings.producer.prepare import EventPreparer
    from tidings.topology import load_topology
    preparer = EventPreparer(load_topology(REPO / "topology.yaml", check_imports=False),
                             "order-service")
    event = order(1)
    best = float("inf")
    for _ in range(rounds):
        began = time.thread_time()
        for _ in range(n):
            preparer.prepare(event)
        best = min(best, time.thread_time() - began)
    return best


def _noop(event: Any, ctx: Any) -> None:
    return None


def bench_handle(n: int, rounds: int) -> float:
    from confluent_kafka import Message

    from tidings.consumer.group import resolve_group
    from tidings.consumer.metrics import ConsumerMetrics
    from tidings.consumer.processing import EventProcessor
    from tidings.db import open_database
    from tidings.producer.prepare import EventPreparer
    from tidings.producer.reliable import ReliableProducer
    from tidings.topology import load_topology

    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    preparer = EventPreparer(topology, "order-service")
    work = Path(tempfile.mkdtemp(prefix="tidings-overhead-"))
    setup = resolve_group(topology, "inventory", open_database(f"sqlite:///{work / 'g.db'}"))
    setup = replace(setup, handler=_noop, setup_hook=None, preparer=None)
    connection = setup.database.connect()
    from tidings.consumer.idempotency import IdempotencyStore
    IdempotencyStore(setup.database, setup.group).create(connection)
    connection.close()
    producer = ReliableProducer({"bootstrap.servers": "127.0.0.1:9"})
    processor = EventProcessor(setup, producer, ConsumerMetrics(setup.group))
    # Under callgrind everything runs ~50x slower: no transaction may be cut for time.
    processor.max_transaction_seconds = 1e9
    event = order(1)
    best = float("inf")
    batch = 500
    for _ in range(rounds):
        messages = []
        for i in range(n):
            p = preparer.prepare(event, event_id=str(uuid.uuid4()))
            messages.append(Message(topic="orders", partition=i % 12, offset=i, key=p.key,
                                    value=p.value, headers=p.headers))
        began = time.thread_time()
        for start in range(0, n, batch):
            processor.handle(messages[start:start + batch])
        best = min(best, time.thread_time() - began)
    processor.close()
    producer.close(0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=["prepare", "handle"])
    parser.add_argument("events", type=int)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sdk", action="store_true",
                        help="trace with an SDK provider (spans made, none exported)")
    args = parser.parse_args()
    if args.sdk:
        from opentelemetry.sdk.trace import TracerProvider

        from tidings import tracing
        tracing.use(TracerProvider())
    import tidings
    seconds = (bench_prepare if args.path == "prepare" else bench_handle)(
        args.events, args.rounds if args.events else 1)
    per = seconds / args.events * 1e6 if args.events else 0.0
    print(f"{args.path}: {args.events} events, best of {args.rounds}: {seconds:.3f}s CPU, "
          f"{per:.2f} µs/event ({Path(tidings.__file__).parents[1]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The console's figures, measured (not a test): the overview of the shop topology
(16 topics, 4 groups) and paging through a DLQ of 10,000 letters.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:23092 .venv/bin/python -m benchmarks.console

Needs a running broker (``tidings dev up``); creates throwaway topics with a unique
prefix and prints what each step took and how many records it read.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from tidings.console import Console, Tokens
from tidings.console.pages.overview import overview_fragment
from tidings.dlq import LetterIndex, show_letters
from tidings.replay import Cluster
from tidings.topology import load_topology, sync

REPO = Path(__file__).resolve().parents[1]
LETTERS = 10_000


def overview() -> None:
    topology = load_topology(REPO / "topology.yaml", check_imports=False)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    console = Console.open(topology, Tokens("operator", "viewer"))
    console.dead_letters.refresh_all()
    took = []
    for _ in range(21):
        began = time.perf_counter()
        overview_fragment(console)
        took.append((time.perf_counter() - began) * 1000)
        time.sleep(0.05)
    print(f"overview of {len(topology.desired_topics())} topics, {len(topology.consumers)} "
          f"groups: first {took[0]:.0f} ms, median {statistics.median(took[1:]):.0f} ms, "
          f"max {max(took[1:]):.0f} ms over 20 renders")


def dlq_paging(root: Path) -> None:
    prefix = f"b{uuid.uuid4().hex[:6]}-"
    shutil.copytree(REPO / "schemas", root / "schemas",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (root / "topology.yaml").write_text(f"""\
name: bench-{prefix}
defaults: {{partitions: 6, replication_factor: 1}}
topics:
  {prefix}orders: {{}}
events:
  order.created: {{topic: {prefix}orders, schema: schemas/order.created.v2.avsc, key: order_id}}
consumers:
  {prefix}loyalty: {{subscribes: [order.created], handler: x:handle, retry: [1s], dlq: true}}
""")
    topology = load_topology(root / "topology.yaml", check_imports=False)
    view = sync.connect(topology)
    sync.apply(view, sync.plan(view))
    group = f"{prefix}loyalty"
    dlq = f"{prefix}orders.{group}.dlq"
    producer = Producer({"bootstrap.servers": Cluster(topology).bootstrap, "linger.ms": 20})
    began = time.perf_counter()
    for i in range(LETTERS):
        producer.produce(dlq, key=f"order-{i}".encode(), value=b"\x00not avro " + bytes(40),
                         partition=i % 6, headers=[
                             ("event-id", str(uuid.uuid4()).encode()),
                             ("event-type", b"order.created"), ("attempt", b"2"),
                             ("error-class", b"RuntimeError" if i % 3 else b"KeyError"),
                             ("error-message", f"failure {i}".encode())])
    producer.flush(60)
    print(f"wrote {LETTERS:,} letters to {dlq} in {time.perf_counter() - began:.1f}s")
    index = LetterIndex(topology, group)
    began = time.perf_counter()
    read = index.refresh()
    print(f"index built once: {read:,} records read in {(time.perf_counter() - began):.2f}s")
    for offset in (0, 5_000, 9_975):
        before = index.records_read
        began = time.perf_counter()
        page = show_letters(topology, group, limit=25, offset=offset, index=index)
        print(f"page at offset {offset:>5}: {len(page.letters)} letters, "
              f"{index.records_read - before} records re-read for the index, 25 fetched, "
              f"{(time.perf_counter() - began) * 1000:.0f} ms")
    began = time.perf_counter()
    page = show_letters(topology, group, limit=25, offset=100,
                        select=index_filter(), index=index)
    print(f"filtered page (KeyError, {page.total:,} match): "
          f"{(time.perf_counter() - began) * 1000:.0f} ms")
    for i in range(100):
        producer.produce(dlq, key=b"late", value=b"x", partition=i % 6,
                         headers=[("event-id", str(uuid.uuid4()).encode())])
    producer.flush(30)
    began = time.perf_counter()
    read = index.refresh()
    print(f"refresh after 100 new letters: {read} records read, "
          f"{(time.perf_counter() - began) * 1000:.0f} ms")


def index_filter():  # type: ignore[no-untyped-def]
    from tidings.dlq import LetterFilter

    return LetterFilter(error_class="KeyError")


def main() -> int:
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        print("set KAFKA_BOOTSTRAP_SERVERS (e.g. to what `tidings dev up` printed)",
              file=sys.stderr)
        return 2
    overview()
    root = Path(tempfile.mkdtemp(prefix="tidings-bench-console-"))
    try:
        dlq_paging(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

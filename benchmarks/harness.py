"""The parent side: the broker, topics, child processes, and the numbers they report.

Every contender runs in a child process of its own (a fresh interpreter, so its peak
RSS is its own) started as ``python -m benchmarks.child MODULE:FUNCTION PARAMS``; the
child prints one ``BENCH-RESULT {json}`` line when it is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.event import PARTITIONS
from benchmarks.probe import TIDINGS_HANDLER

REPO = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "BENCH-RESULT "


class BenchError(RuntimeError):
    """A contender could not be measured (its row says why instead of a number)."""


# -- the broker --------------------------------------------------------------------------


@contextlib.contextmanager
def broker() -> Iterator[tuple[str, str]]:
    """``(bootstrap, where)``: KAFKA_BOOTSTRAP_SERVERS if set, else a throwaway local
    broker (Apache Kafka from the Maven Central jars, stopped and deleted on exit)."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        yield configured, "KAFKA_BOOTSTRAP_SERVERS"
        return
    from tidings.kafka_local import KAFKA_VERSION
    from tidings.testing import local_kafka

    with local_kafka() as cluster:
        yield cluster.bootstrap, f"throwaway local broker (Apache Kafka {KAFKA_VERSION}, KRaft)"


def create_topics(bootstrap: str, names: Sequence[str], partitions: int = PARTITIONS) -> None:
    """Create ``names`` (same partitions, replication 1) and wait until they have leaders."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names],
                                  operation_timeout=30)
    for name, future in futures.items():
        try:
            future.result()
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BenchError(f"cannot create topic {name}: {exc}") from None
    wait_for_leaders(admin, names, partitions)


def wait_for_leaders(admin: Any, names: Sequence[str], partitions: int,
                     timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=10)
        ready = all(
            name in metadata.topics
            and len(metadata.topics[name].partitions) == partitions
            and all(p.leader >= 0 for p in metadata.topics[name].partitions.values())
            for name in names
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"topics {', '.join(names)} have no leaders after {timeout:g}s")
        time.sleep(0.2)


def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Best effort: the broker is throwaway, but a long run should not fill the disk."""
    from confluent_kafka.admin import AdminClient

    if not names:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(list(names), operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result()


def wait_for_group(bootstrap: str, group: str, topic: str, members: int,
                   timeout: float = 60) -> None:
    """Until ``group`` is stable with ``members`` members, each owning part of ``topic``."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            description = admin.describe_consumer_groups([group])[group].result()
        except Exception:
            time.sleep(0.2)
            continue
        owned = [sum(1 for tp in m.assignment.topic_partitions if tp.topic == topic)
                 for m in description.members]
        if (description.state == ConsumerGroupState.STABLE and len(owned) == members
                and all(owned) and sum(owned) == PARTITIONS):
            return
        time.sleep(0.2)
    raise BenchError(f"group {group} did not settle with {members} member(s) in {timeout:g}s")


# -- the Tidings side: a throwaway topology ------------------------------------------------

TOPOLOGY = """\
# Written by benchmarks/ for one run; thrown away with its directory.
name: {name}
defaults: {{partitions: {partitions}, replication_factor: 1}}
topics:
  {topic}: {{}}
events:
  order.created:
    topic: {topic}
    schema: schemas/order.created.v2.avsc
    key: order_id
    model: schemas.models:OrderCreated
producers:
  bench-service: {{publishes: [order.created]}}
consumers:
{consumers}"""

CONSUMER = """\
  {group}:
    subscribes: [order.created]
    handler: bench_handler:handle
"""


@dataclass
class TidingsSetup:
    """A topology in a temp dir: one topic carrying order.created, one publisher
    (``bench-service``) and consumer groups whose handler is a counting no-op."""

    root: Path
    topic: str
    groups: list[str]

    @property
    def path(self) -> Path:
        return self.root / "topology.yaml"

    def database_url(self, group: str) -> str:
        return f"sqlite:///{self.root / (group + '.db')}"

    @classmethod
    def create(cls, root: Path, topic: str, groups: Sequence[str]) -> TidingsSetup:
        """Write the topology and apply it (topics and the groups' replay topics) with
        Tidings' own ``topology apply``."""
        from tidings.topology import load_topology, sync

        root.mkdir(parents=True, exist_ok=True)
        if not (root / "schemas").exists():
            shutil.copytree(REPO / "schemas", root / "schemas",
                            ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        (root / "bench_handler.py").write_text(TIDINGS_HANDLER)
        consumers = "".join(CONSUMER.format(group=g) for g in groups) or "  {}\n"
        if not groups:
            consumers = ""
        text = TOPOLOGY.format(name=f"bench-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS,
                               topic=topic, consumers=consumers)
        if not groups:
            text = text.replace("consumers:\n", "")
        (root / "topology.yaml").write_text(text)
        topology = load_topology(root / "topology.yaml")
        view = sync.connect(topology)
        sync.apply(view, sync.plan(view))
        return cls(root, topic, list(groups))


# -- child processes -----------------------------------------------------------------------


@dataclass
class Child:
    """One contender's process; stdout carries the result line, stderr goes to a log."""

    name: str
    proc: subprocess.Popen[str]
    log_path: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, target: str, params: dict[str, Any], log_dir: Path) -> Child:
        log_dir.mkdir(parents=True, exist_ok=True)
        name = target.split(".")[-1].replace(":", "-")
        log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.child", target, json.dumps(params)],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
            )
        child = cls(name, proc, log_path)
        threading.Thread(target=child._read, daemon=True).start()
        return child

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")  # EOF

    def result(self, timeout: float) -> dict[str, Any]:
        """The child's result, or :class:`BenchError` (it is killed after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise BenchError(f"{self.name}: no result within {timeout:.0f}s "
                                 f"({self._tail()})")
            try:
                line = self.lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line.startswith(RESULT_PREFIX):
                self.proc.wait(timeout=30)
                data: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
                if "error" in data:
                    raise BenchError(f"{self.name}: {data['error']}")
                return data
            if line == "" and self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} "
                                 f"({self._tail()})")

    def terminate(self) -> None:
        """Ask the child to finish (SIGTERM); it still prints its result."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _tail(self) -> str:
        try:
            lines = [line for line in self.log_path.read_text().splitlines() if line.strip()]
        except OSError:
            return "no log"
        return " | ".join(lines[-3:])[-400:] or f"log: {self.log_path}"


def run_child(target: str, params: dict[str, Any], log_dir: Path,
              timeout: float = 300) -> dict[str, Any]:
    child = Child.start(target, params, log_dir)
    try:
        return child.result(timeout)
    finally:
        child.kill()


# -- statistics ----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return None
    rank = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(latencies_ms)
    return {"p50_ms": percentile(ordered, 0.50), "p99_ms": percentile(ordered, 0.99),
            "p999_ms": percentile(ordered, 0.999), "max_ms": ordered[-1] if ordered else None}


# -- the machine ---------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import platform

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    from importlib import metadata

    found: dict[str, str] = {}
    for package in ("tidings", "confluent-kafka", "fastavro", "pydantic", "faststream",
                    "aiokafka", "quixstreams", "orjson"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    with contextlib.suppress(Exception):
        import confluent_kafka

        found["librdkafka"] = str(confluent_kafka.libversion()[0])
    with contextlib.suppress(Exception):
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tidings"], cwd=REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        found["tidings_commit"] = rev + ("+changes" if dirty else "")
    return found


# -- a run ---------------------------------------------------------------------------------


@dataclass
class Sizes:
    """How much each scenario does; ``--quick`` shrinks every one."""

    rounds: int
    produce_n: int
    consume_n: int
    latency_rate: int
    latency_seconds: float
    latency_rounds: int
    replay_n: int
    scaling_n: int
    scaling_rounds: int
    publish_batch: int = 5000  # events per Publisher.publish_many call

    @classmethod
    def for_mode(cls, quick: bool, rounds: int | None = None) -> Sizes:
        if quick:
            return cls(rounds=rounds or 1, produce_n=10_000, consume_n=8_000, latency_rate=1000,
                       latency_seconds=5, latency_rounds=1, replay_n=5_000, scaling_n=5_000,
                       scaling_rounds=1)
        return cls(rounds=rounds or 3, produce_n=50_000, consume_n=40_000, latency_rate=1000,
                   latency_seconds=30, latency_rounds=1, replay_n=40_000, scaling_n=30_000,
                   scaling_rounds=2)


@dataclass
class Context:
    bootstrap: str
    workdir: Path
    sizes: Sizes
    payload: dict[str, int] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def unique(self, stem: str) -> str:
        return f"bench-{stem}-{uuid.uuid4().hex[:6]}"

    def child(self, target: str, params: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        return run_child(target, {"bootstrap": self.bootstrap, **params}, self.log_dir,
                         timeout=timeout)

    def start(self, target: str, params: dict[str, Any]) -> Child:
        return Child.start(target, {"bootstrap": self.bootstrap, **params}, self.log_dir)


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

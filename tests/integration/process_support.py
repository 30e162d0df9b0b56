"""Consumer services as real OS processes (``tidings run``), and kill -9 on schedule."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from consumers.email.smtp_sink import free_port

REPO = Path(__file__).resolve().parents[2]

# -- running services as processes ----------------------------------------------------------


@dataclass
class Run:
    """One OS process of a service."""

    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    started: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metric(self, name: str) -> float:
        """Sum of a counter over its labels, scraped from the process's /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            body = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:  # not serving yet
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith(name + "{"))

    def done_counts(self) -> dict[str, int]:
        """The counts of the ``done: ...`` line a service logs when it stops."""
        found = re.findall(r" done: (.*)$", self.text(), re.MULTILINE)
        if not found or found[-1] == "no events":
            return {}
        return {outcome: int(n) for n, outcome in
                (part.split(" ", 1) for part in found[-1].split(", "))}


class Fleet:
    """Starts ``tidings run`` processes; every one is stopped by PID on exit."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.runs: list[Run] = []

    def start(self, group: str, topology: Path, database_url: str, *,
              shutdown_timeout: float = 30.0, extra_env: dict[str, str] | None = None,
              extra_args: Sequence[str] = ()) -> Run:
        port = free_port()
        log = self.root / f"{group}-{len(self.runs)}.log"
        command = [sys.executable, "-m", "tidings", "run", group, "-f", str(topology),
                   "--database", database_url, "--metrics-port", str(port),
                   "--shutdown-timeout", str(shutdown_timeout), *extra_args]
        with log.open("wb") as out:
            proc = subprocess.Popen(command, cwd=self.root, env={**self.env, **(extra_env or {})},
                                    stdout=out, stderr=subprocess.STDOUT)
        run = Run(proc, log, port)
        self.runs.append(run)
        return run

    def kill(self, run: Run) -> None:
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=30)

    def terminate(self, run: Run, timeout: float) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the process took to exit."""
        began = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        try:
            code = run.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{run.log.name}: still running {timeout:.0f}s after "
                                 f"SIGTERM:\n{run.text()[-3000:]}") from None
        return code, time.monotonic() - began

    def stop_all(self) -> None:
        for run in self.runs:
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGKILL)
                run.proc.wait(timeout=30)


@contextmanager
def fleet(root: Path, bootstrap: str) -> Iterator[Fleet]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONPATH": str(REPO),
           "PYTHONUNBUFFERED": "1"}
    processes = Fleet(root, env)
    try:
        yield processes
    finally:
        processes.stop_all()


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               runs: Sequence[Run] = ()) -> Any:
    """``condition()`` once truthy; fails (with the services' logs) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for run in runs:
            if run.proc.poll() is not None:
                raise AssertionError(f"{run.log.name} exited ({run.proc.returncode}) while "
                                     f"waiting for {what}:\n{run.text()[-3000:]}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {r.log.name}\n{r.text()[-2000:]}" for r in runs)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.05)


def wait_for_progress(progress: Callable[[], int], target: int, stall: float, what: str,
                      runs: Sequence[Run] = ()) -> None:
    """Until ``progress()`` reaches ``target``; fails (with the services' logs) once it
    has not moved for ``stall`` seconds. How fast it gets there depends on the machine's
    load; that it keeps moving, and gets there, is what the tests care about."""
    last, moved_at = progress(), time.monotonic()

    def arrived() -> bool:
        nonlocal last, moved_at
        now = progress()
        if now != last:
            last, moved_at = now, time.monotonic()
        if time.monotonic() - moved_at > stall:
            logs = "\n".join(f"--- {r.log.name}\n{r.text()[-2000:]}" for r in runs)
            raise AssertionError(f"no progress for {stall:.0f}s at {now} of {target} "
                                 f"waiting for {what}\n{logs}")
        return now >= target

    wait_until(arrived, float("inf"), what, runs)


def count_rows(path: Path, sql: str) -> int:
    """One number from a service's SQLite database (0 before its tables exist)."""
    if not path.exists():
        return 0
    connection = sqlite3.connect(path, timeout=30)
    try:
        return int(connection.execute(sql).fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        connection.close()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        return list(connection.execute(sql).fetchall())
    finally:
        connection.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions],
                                       timeout=10)
        return {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()


@dataclass
class Chaos:
    """kill -9 a service whenever its progress reaches the next random threshold."""

    name: str
    start: Callable[[], Run]
    progress: Callable[[], int]
    thresholds: list[int]
    total: int
    run: Run | None = None
    run_began_at: int = 0
    kills: list[tuple[int, int, float]] = field(default_factory=list)  # (from, at, when)

    def begin(self) -> None:
        self.run = self.start()
        self.run_began_at = self.progress()

    def step(self, fleet: Fleet, min_progress: int) -> None:
        assert self.run is not None
        if len(self.kills) >= len(self.thresholds):
            return
        if self.run.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited on its own:\n{self.run.text()[-3000:]}")
        done = self.progress()
        target = max(self.thresholds[len(self.kills)], self.run_began_at + min_progress)
        if done >= target:
            fleet.kill(self.run)
            at = self.progress()  # nothing moves any more: the process is gone
            self.kills.append((self.run_began_at, at, time.time()))
            self.begin()

    def summary(self) -> str:
        steps = ", ".join(f"{began}->{at}" for began, at, _ in self.kills)
        return (f"{len(self.kills)} kill -9 ({self.mid_processing} mid-processing; "
                f"rows done before->at each kill: {steps}; of {self.total})")

    @property
    def mid_processing(self) -> int:
        """Kills that landed after this run made progress and before the work was done."""
        return sum(began < at < self.total for began, at, _ in self.kills)



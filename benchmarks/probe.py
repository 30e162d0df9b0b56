"""Counters the benchmark handlers call: how many events, when the first and the last.

Lives in a module of its own so a Tidings handler module (written to a temp dir) and
the child process that runs it share one copy. Times are ``time.monotonic()``, which
on Linux is one clock for every process, so two consumers' times can be merged.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.event import SENT_HEADER

#: Set by SIGTERM in a contender's process: finish up and report.
STOP = threading.Event()

target = 0
count = 0
first_at = 0.0
last_at = 0.0
done = threading.Event()
#: Set to a list to record publish-to-handler latency (ms) from the sent header.
latencies: list[float] | None = None


def reset(expected: int, *, record_latency: bool = False) -> None:
    global target, count, first_at, last_at, latencies
    target, count, first_at, last_at = expected, 0, 0.0, 0.0
    latencies = [] if record_latency else None
    done.clear()


def hit(n: int = 1) -> None:
    """``n`` events reached the handler."""
    global count, first_at, last_at
    last_at = time.monotonic()
    if count == 0:
        first_at = last_at
    count += n
    if count >= target > 0:
        done.set()


def hit_with_headers(headers: Mapping[str, Any]) -> None:
    """One event reached the handler; its sent-at header, if any, gives its latency."""
    if latencies is not None:
        sent = headers.get(SENT_HEADER)
        if sent is not None:
            raw = sent.decode() if isinstance(sent, bytes) else str(sent)
            latencies.append((time.time_ns() - int(raw)) / 1e6)
    hit()


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


#: The handler module Tidings imports from the topology (a no-op besides counting).
TIDINGS_HANDLER = '''\
"""No-op benchmark handler: counts, and for the latency scenario stamps the arrival."""
from benchmarks import probe


def handle(event, ctx):
    if probe.latencies is None:
        probe.hit()
    else:
        probe.hit_with_headers(ctx.headers)
'''

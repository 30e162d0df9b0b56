"""Scenario 5, scaling: one vs two consumer processes of the same Tidings group.

The members join first (the parent waits until the group is stable with every member
owning partitions); then N events are published, and the group's throughput is N over
the time from the first event handled by any member to the last. Each member is a
``tidings run``-like process: the consumer runtime with its defaults.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import probe
from benchmarks.harness import (
    BenchError,
    Child,
    Context,
    TidingsSetup,
    delete_topics,
    progress,
    wait_for_group,
)
from benchmarks.report import Row, ScenarioResult

MEMBERS = (1, 2)


def member(params: dict[str, Any]) -> dict[str, Any]:
    """One member: runs until SIGTERM, writing its count to ``progress`` as it goes."""
    from tidings.consumer.group import resolve_group
    from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
    from tidings.db import open_database
    from tidings.topology import load_topology

    probe.reset(0)
    setup = resolve_group(load_topology(params["topology"]), params["group"],
                          open_database(params["database"]))
    runtime = ConsumerRuntime(setup, {"bootstrap.servers": params["bootstrap"]},
                              RuntimeOptions())
    out = Path(params["progress"])
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    rss = 0.0
    while not probe.STOP.wait(0.2):
        out.write_text(str(probe.count))
        if probe.count:
            rss = max(rss, probe.rss_mb())
    runtime.stop()
    thread.join(timeout=60)
    return {"msgs": probe.count, "first_at": probe.first_at, "last_at": probe.last_at,
            "rss_mb": rss}


def _count(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError, ValueError):
            total += int(path.read_text() or 0)
    return total


def _measure(ctx: Context, members: int, round_no: int) -> dict[str, Any]:
    n = ctx.sizes.scaling_n
    group = f"scale{members}"
    setup = TidingsSetup.create(ctx.workdir / f"scaling-{members}-{round_no}",
                                ctx.unique(f"scaling-{members}"), [group])
    paths = [setup.root / f"progress-{i}" for i in range(members)]
    children: list[Child] = [
        ctx.start("benchmarks.scaling:member", {
            "topology": str(setup.path), "group": group,
            "database": setup.database_url(f"{group}-{i}"), "progress": str(paths[i])})
        for i in range(members)
    ]
    try:
        wait_for_group(ctx.bootstrap, group, setup.topic, members)
        ctx.child("benchmarks.consume:prefill", {"n": n, "topology": str(setup.path),
                                                 "avro_topic": setup.topic}, timeout=600)
        deadline = time.monotonic() + 300
        while _count(paths) < n:
            if time.monotonic() > deadline:
                raise BenchError(f"{members} member(s) handled {_count(paths)} of {n} in 300 s")
            time.sleep(0.2)
        for child in children:
            child.terminate()
        results = [child.result(timeout=90) for child in children]
    finally:
        for child in children:
            child.kill()
    delete_topics(ctx.bootstrap, [setup.topic, f"{setup.topic}.{group}.replay"])
    handled = [r for r in results if r["msgs"]]
    first = min(r["first_at"] for r in handled)
    last = max(r["last_at"] for r in handled)
    return {"msgs": n, "seconds": last - first, "bytes": n * ctx.payload["avro_bytes"],
            "shares": [r["msgs"] for r in results],
            "rss_mb": max(r["rss_mb"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def scenario(ctx: Context) -> ScenarioResult:
    rounds = ctx.sizes.scaling_rounds
    rows = {k: Row(f"tidings x {k}", f"{k} consumer process(es), one group")
            for k in MEMBERS}
    for round_no in range(rounds):
        for members in MEMBERS:
            row = rows[members]
            if row.error:
                continue
            try:
                run = _measure(ctx, members, round_no)
            except BenchError as exc:
                row.error = str(exc)
                progress(f"scaling x{members}: FAILED {exc}")
                continue
            row.runs.append(run)
            progress(f"scaling round {round_no + 1}/{rounds} x{members}: "
                     f"{run['msgs'] / run['seconds']:,.0f} msgs/s, shares {run['shares']}")
    result = ScenarioResult(
        "scaling", "5. Scaling", f"{ctx.sizes.scaling_n:,} events through one Tidings "
        "group with one, then two member processes (the ratio column is against one "
        "process).", list(rows.values()), ["msgs", "runs", "ratio", "rss", "peak"],
        baseline="tidings x 1",
        notes=["All on two cores shared with the broker and the publisher. A gain above 2x "
               "means a lone member spends much of its time waiting rather than computing.",
               "RSS columns are per member process."],
    )
    return result

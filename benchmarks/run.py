"""``python -m benchmarks.run [--quick]``: every scenario, every contender, one table.

Starts a throwaway local Kafka unless KAFKA_BOOTSTRAP_SERVERS is set, runs the
scenarios in order (each contender in a fresh child process, contenders alternated
over the rounds), and writes ``benchmarks/results/latest.md`` and ``latest.json``.
Nothing here asserts a speed; a scenario that fails is reported as failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import consume, latency, produce, replay, scaling
from benchmarks.harness import (
    REPO,
    Context,
    Sizes,
    broker,
    machine_info,
    progress,
    versions,
)
from benchmarks.report import Row, ScenarioResult, write
from benchmarks.targets import evaluate

SCENARIOS: dict[str, Callable[[Context], ScenarioResult]] = {
    "produce": produce.scenario,
    "consume": consume.scenario,
    "latency": latency.scenario,
    "replay": replay.scenario,
    "scaling": scaling.scenario,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one round: a ~1 minute smoke run (CI may run it)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per contender (default 3, quick 1)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated scenarios (default all: {', '.join(SCENARIOS)})")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                        help="where latest.md / latest.json go")
    parser.add_argument("--name", default="latest", help="file stem of the results")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--note", default="",
                        help="a line at the top of the results, e.g. what the machine was "
                             "doing ('smoke run on a loaded machine')")
    return parser.parse_args(argv)


def event_sizes() -> dict[str, int]:
    from benchmarks.event import order
    from schemas.models import OrderCreated
    from tidings.producer.prepare import EventPreparer
    from tidings.topology import load_topology

    model = OrderCreated.model_validate(order(0))
    preparer = EventPreparer(load_topology(REPO / "topology.yaml", check_imports=False),
                             "order-service")
    prepared = preparer.prepare(model)
    return {"avro_bytes": len(prepared.value), "json_bytes": len(model.model_dump_json()),
            "tidings_header_bytes": sum(len(k) + len(v) for k, v in prepared.headers)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(SCENARIOS)})",
              file=sys.stderr)
        return 2
    sizes = Sizes.for_mode(args.quick, args.rounds)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    began = time.monotonic()
    machine = machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    results: list[ScenarioResult] = []
    try:
        progress("starting the broker" if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
                 else "using KAFKA_BOOTSTRAP_SERVERS")
        with broker() as (bootstrap, where):
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap  # children and topology apply
            progress(f"broker at {bootstrap} ({where})")
            ctx = Context(bootstrap, workdir, sizes, payload=event_sizes())
            for key in chosen:
                progress(f"scenario {key}")
                scenario_began = time.monotonic()
                try:
                    result = SCENARIOS[key](ctx)
                except Exception as exc:  # one broken scenario must not lose the others
                    traceback.print_exc()
                    result = ScenarioResult(key, key, "", [Row("all", error=str(exc))],
                                            ["msgs"])
                result.seconds = time.monotonic() - scenario_began
                results.append(result)
        meta: dict[str, Any] = {
            "started": started, "mode": "quick" if args.quick else "default",
            "rounds": sizes.rounds, "sizes": vars(sizes), "machine": machine,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "versions": versions(), "broker": where, "partitions": 6,
            "event": ctx.payload, "total_s": time.monotonic() - began, "note": args.note,
        }
        markdown, data = write(args.out, args.name, meta, results, evaluate(results))
        progress(f"wrote {markdown} and {data.name} in {meta['total_s']:.0f} s")
        print(markdown.read_text())
    finally:
        if args.keep:
            progress(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

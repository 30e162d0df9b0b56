"""``tidings run SERVICE``: run a consumer-group service declared in topology.yaml."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path
from typing import Any

from tidings import tracing
from tidings.cli._environment_arg import add_env_argument
from tidings.consumer.group import resolve_group
from tidings.consumer.runtime import ConsumerRuntime, RuntimeOptions
from tidings.db import open_database
from tidings.settings import Settings, kafka_client_config
from tidings.topology import Topology, load_topology


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run a consumer-group service (or the scheduler) from "
                                     "topology.yaml")
    run.add_argument("service", help="the consumer group, e.g. inventory; or `scheduler`")
    run.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
    add_env_argument(run)
    run.add_argument("--database", default=None,
                     help="the group's database URL (default: $TIDINGS_DATABASE_URL or "
                          "sqlite:///.tidings/SERVICE.db)")
    run.add_argument("--metrics-port", type=int, default=None,
                     help="serve /metrics and /healthz on this port "
                          "(default: $TIDINGS_METRICS_PORT; 0 picks one)")
    run.add_argument("--concurrency", type=int, default=None,
                     help="override the topology's concurrency for this instance")
    run.add_argument("--instance-id", default=None, metavar="NAME",
                     help="a stable name for this instance, e.g. the pod name (default: "
                          "$TIDINGS_INSTANCE_ID): joins as a static member, so a restart "
                          "gets its partitions back at once; see the README")
    run.add_argument("--session-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="how long the group waits for a silent member before moving its "
                          "partitions (default 10; static members often use 30-60)")
    run.add_argument("--shutdown-timeout", type=float, default=30.0,
                     help="seconds in-flight events get to finish on SIGTERM (default 30)")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=os.environ.get("TIDINGS_LOG_LEVEL", "INFO"),
                        format=f"%(asctime)s {args.service} %(levelname)s %(message)s")
    topology = load_topology(Path(args.file) if args.file else Settings().topology,
                             env=args.env)
    if args.service == "scheduler":
        return run_scheduler(topology, args)
    url = args.database or os.environ.get("TIDINGS_DATABASE_URL") \
        or f"sqlite:///.tidings/{args.service}.db"
    # Before the group is resolved: its publisher and workers read the flag once.
    tracing.configure_from_environment(args.service)
    setup = resolve_group(topology, args.service, open_database(url))
    port = args.metrics_port
    if port is None and os.environ.get("TIDINGS_METRICS_PORT"):
        port = int(os.environ["TIDINGS_METRICS_PORT"])
    runtime = ConsumerRuntime(
        setup,
        kafka_client_config(None, topology.cluster.client_properties,
                            topology.cluster.bootstrap_servers,
                            near=topology.root),
        RuntimeOptions(concurrency=args.concurrency, metrics_port=port,
                       shutdown_timeout=args.shutdown_timeout,
                       session_timeout_ms=int(args.session_timeout * 1000),
                       static_name=args.instance_id or os.environ.get("TIDINGS_INSTANCE_ID")
                       or None),
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runtime.stop())
    runtime.run()
    counts = ", ".join(f"{n} {o.value}" for o, n in runtime.counts.items() if n)
    logging.getLogger("tidings.consumer").info("done: %s", counts or "no events")
    return 0


def run_scheduler(topology: Topology, args: argparse.Namespace) -> int:
    """``tidings run scheduler``: deliver scheduled events and emit recurring ticks."""
    from tidings.scheduling.dispatcher import Scheduler, SchedulerOptions

    port = args.metrics_port
    if port is None and os.environ.get("TIDINGS_METRICS_PORT"):
        port = int(os.environ["TIDINGS_METRICS_PORT"])
    scheduler = Scheduler(
        topology,
        kafka_client_config(None, topology.cluster.properties,
                            topology.cluster.bootstrap_servers, near=topology.root),
        SchedulerOptions(instance_id=args.instance_id or os.environ.get("TIDINGS_INSTANCE_ID")
                         or None, metrics_port=port,
                         session_timeout_ms=int(args.session_timeout * 1000)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: scheduler.stop())
    scheduler.run()
    metrics = scheduler.metrics
    logging.getLogger("tidings.scheduler").info(
        "done: %d dispatched, %d tick(s)", metrics.total("tidings_scheduler_dispatched_total"),
        metrics.total("tidings_scheduler_ticks_total"))
    return 0

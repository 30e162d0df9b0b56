"""``tidings demo``: the whole story on one machine, with embedded defaults.

Today: a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS names a cluster),
topology.yaml applied, and the resulting topics listed as Kafka reports them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from tidings.errors import TidingsError
from tidings.settings import Settings
from tidings.topology import load_topology, sync
from tidings.topology.load import display_name


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="run the whole story on one machine")
    parser.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the local broker running afterwards")
    parser.set_defaults(func=cmd_demo)


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from tidings.kafka_local import LocalCluster

    settings = Settings()
    path = Path(args.file) if args.file else settings.topology
    cluster: LocalCluster | None = None
    started_here = False
    try:
        if settings.bootstrap_servers:
            step(f"Using the Kafka cluster at {settings.bootstrap_servers}")
        else:
            cluster = LocalCluster()
            started_here = not cluster.status().running
            step("Starting a local Kafka broker (KRaft)" if started_here
                 else "Using the local Kafka broker that is already running")
            began = time.monotonic()
            bootstrap = cluster.up()
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
            print(f"Kafka is up at {bootstrap} ({time.monotonic() - began:.1f}s); "
                  f"logs in {cluster.state_dir}")

        step(f"Validating {display_name(path.resolve())}")
        topology = load_topology(path)
        print("valid")

        step("Planning and applying the topology")
        view = sync.connect(topology, Settings())
        plan = sync.plan(view)
        if plan.refusals or plan.destructive:
            raise TidingsError("the demo does not apply refused or destructive changes; run "
                               "`tidings topology plan` to see them")
        sync.apply(view, plan)
        print(f"{len(plan.changes)} change(s) applied; "
              f"{plan.topics_in_sync} topic(s) were already in sync")

        step("Topics on the cluster, as Kafka reports them")
        metadata = view.admin.list_topics(timeout=10)
        rows = []
        for wanted in topology.desired_topics():
            meta = metadata.topics.get(wanted.name)
            partitions = len(meta.partitions) if meta else 0
            replicas = max((len(p.replicas) for p in meta.partitions.values()), default=0) \
                if meta else 0
            rows.append((wanted.name, str(partitions), str(replicas), wanted.origin))
        width = max(len(r[0]) for r in rows)
        print(f"{'topic':<{width}}  partitions  replicas  purpose")
        for name, shown_partitions, shown_replicas, origin in rows:
            print(f"{name:<{width}}  {shown_partitions:>10}  {shown_replicas:>8}  {origin}")
        missing = [r[0] for r in rows if r[1] == "0"]
        if missing:
            raise TidingsError(f"topics missing after apply: {', '.join(missing)}")
        step("Done")
        return 0
    finally:
        if cluster is not None and started_here and not args.keep_running:
            step("Stopping the local Kafka broker")
            cluster.down()

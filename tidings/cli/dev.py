"""``tidings dev up|down|status``: a local Kafka cluster for development."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidings.errors import TidingsError
from tidings.kafka_local import (
    DEFAULT_BASE_PORT,
    KAFKA_VERSION,
    LocalCluster,
    default_state_dir,
    forget_dev_cluster,
    remember_dev_cluster,
)
from tidings.kafka_local.registry import DEFAULT_REGISTRY_PORT, LocalRegistry, read_record
from tidings.kafka_local.tools import TOOLS, tools_bin_dir, write_tool_scripts


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``dev`` command and its sub-commands to the CLI."""
    dev = subparsers.add_parser(
        "dev",
        help="run a local Kafka cluster (no Docker needed)",
        description=(
            f"Run Apache Kafka {KAFKA_VERSION} locally in KRaft mode from the Maven Central "
            "jars (fetched once; needs Java 17+), with Kafka's own command-line tools in "
            "<state dir>/bin and, with --registry, a schema registry (Apicurio). State "
            "lives in ${TIDINGS_STATE_DIR:-./.tidings}/dev."
        ),
    )
    sub = dev.add_subparsers(dest="dev_command", metavar="SUBCOMMAND")
    sub.required = True

    up = sub.add_parser("up", help="start the cluster and print its bootstrap servers")
    up.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=None,
        help="number of broker+controller nodes (default: as last time, else 1)",
    )
    up.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="BASE",
        help=(
            "first port; node N uses BASE+2(N-1) for clients and the next one for its "
            f"controller (default: as last time, else {DEFAULT_BASE_PORT})"
        ),
    )
    up.add_argument("--fresh", action="store_true", help="delete existing topics and data first")
    up.add_argument(
        "--registry",
        action="store_true",
        help="also run a schema registry (Apicurio, Confluent-compatible API, in memory)",
    )
    up.add_argument(
        "--registry-port",
        type=int,
        default=None,
        metavar="PORT",
        help="the registry's port; PORT+1 is its management port "
        f"(default: as last time, else {DEFAULT_REGISTRY_PORT})",
    )
    up.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for the brokers (default 90)"
    )
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the cluster (its data is kept)")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="show which nodes run where")
    status.set_defaults(func=cmd_status)


def _cluster_for(args: argparse.Namespace) -> LocalCluster:
    """Explicit flags win; otherwise reuse what this state dir ran last time."""
    state_dir = default_state_dir()
    previous = LocalCluster.from_state_dir(state_dir)
    brokers = args.brokers or (previous.brokers if previous else 1)
    port = args.port or (previous.base_port if previous else DEFAULT_BASE_PORT)
    return LocalCluster(state_dir, brokers=brokers, base_port=port)


def _registry_for(args: argparse.Namespace, state_dir: Path) -> LocalRegistry:
    previous = LocalRegistry.from_state_dir(state_dir)
    port = args.registry_port or (previous.port if previous else DEFAULT_REGISTRY_PORT)
    return LocalRegistry(state_dir, port=port)


def cmd_up(args: argparse.Namespace) -> int:
    """Start (or find running) and print the bootstrap servers as the last line."""
    cluster = _cluster_for(args)
    bootstrap = cluster.up(fresh=args.fresh, timeout=args.timeout)
    remember_dev_cluster(cluster.state_dir)
    print(f"Kafka {KAFKA_VERSION}: {cluster.brokers} broker(s) running")
    print(f"  state and data: {cluster.state_dir}")
    for node in cluster.nodes:
        print(f"  node {node.node_id}: {node.address}  log {node.log_path}")
    _print_tools(cluster.state_dir, bootstrap)
    if args.registry:
        registry = _registry_for(args, cluster.state_dir)
        url = registry.up(timeout=max(args.timeout, 180.0))
        version = (read_record(cluster.state_dir) or {}).get("version", "?")
        print(f"Schema registry (Apicurio {version}, in memory): log {registry.log_path}")
        print("  export TIDINGS_SCHEMA_REGISTRY_URL to use it:")
        print(url)
    print("  stop with `tidings dev down`; export KAFKA_BOOTSTRAP_SERVERS to use it:")
    print(bootstrap)
    return 0


def _print_tools(state_dir: Path, bootstrap: str) -> None:
    # The tools are a convenience: a failed download must not fail a running broker.
    bin_dir = tools_bin_dir(state_dir)
    try:
        write_tool_scripts(bin_dir)
    except TidingsError as exc:
        print(f"tidings: Kafka's command-line tools are not available: {exc}", file=sys.stderr)
        return
    first = bootstrap.split(",")[0]
    print(f"  Kafka's tools in {bin_dir}: {', '.join(TOOLS)}")
    print(f"    e.g. {bin_dir / 'kafka-consumer-groups'} --bootstrap-server {first} --list")


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the schema registry and every node of the default state dir."""
    state_dir = default_state_dir()
    registry = LocalRegistry.from_state_dir(state_dir)
    if registry is not None and registry.live_pid() is not None:
        registry.down()
        print("schema registry stopped")
    cluster = LocalCluster.from_state_dir(state_dir) or LocalCluster(state_dir)
    was_running = cluster.status().running
    cluster.down()
    forget_dev_cluster(state_dir)
    print("local Kafka stopped" if was_running else "no local Kafka running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print one line per node, or that nothing runs."""
    state_dir = default_state_dir()
    cluster = LocalCluster.from_state_dir(state_dir)
    status = cluster.status() if cluster else None
    if status is None or not status.running:
        print(f"no local Kafka running (state dir {Path(state_dir)})")
    else:
        print(f"local Kafka {KAFKA_VERSION} at {status.bootstrap} (state dir {status.state_dir})")
        for node in status.nodes:
            state = "alive" if node.alive else "DOWN"
            pid = node.pid if node.alive else "-"
            print(f"  node {node.node_id}: pid {pid}  port {node.client_port}  {state}  "
                  f"{node.log_path}")
    registry = LocalRegistry.from_state_dir(state_dir)
    registry_alive = False
    if registry is not None:
        reg = registry.status()
        registry_alive = reg.alive
        if reg.alive:
            print(f"schema registry (Apicurio {reg.version}) at {reg.url}: pid {reg.pid}  "
                  f"alive  {reg.log_path}")
        else:
            print(f"no schema registry running (last at {reg.url})")
    if (status is None or not status.running) and not registry_alive:
        return 3  # as status commands do (LSB: "program is not running")
    return 0

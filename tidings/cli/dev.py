"""``tidings dev up|down|status``: a local Kafka cluster for development."""

from __future__ import annotations

import argparse
import re
import shlex
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
from tidings.kafka_local.security import (
    ADMIN_PROPERTIES,
    ADMIN_USER,
    ClusterSecurity,
    credentials_path,
    load_security,
)
from tidings.kafka_local.tools import TOOLS, tools_bin_dir, write_tool_scripts

#: A principal ``User:<name>`` whose name can be a SCRAM user of the local cluster.
_SCRAM_PRINCIPAL = re.compile(r"^User:([A-Za-z0-9._-]{1,100})$")


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
        "--secure", action=argparse.BooleanOptionalAction, default=None,
        help="SASL/SCRAM-SHA-512 listeners, ACLs enforced (StandardAuthorizer, nothing "
             "allowed without an ACL), an admin super-user and one user per service of "
             "topology.yaml, with random passwords (default: as last time, else off)")
    up.add_argument(
        "--tls", action=argparse.BooleanOptionalAction, default=None,
        help="with --secure: TLS too (SASL_SSL), signed by a throwaway CA (default: as last "
             "time, else off)")
    up.add_argument("-f", "--file", type=Path, default=None,
                    help="with --secure: the topology whose services get users (default: "
                         "$TIDINGS_TOPOLOGY or ./topology.yaml, when it exists)")
    up.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for the brokers (default 90)"
    )
    up.set_defaults(func=cmd_up)

    env = sub.add_parser(
        "env", help="print the variables that connect to a secure local cluster",
        description="Print KAFKA_BOOTSTRAP_SERVERS and the TIDINGS_KAFKA_* variables (SASL "
                    "and TLS settings, the password) of one user of the running secure "
                    "cluster, as shell exports: eval \"$(tidings dev env --as inventory)\".")
    env.add_argument("--as", dest="user", default=ADMIN_USER, metavar="USER",
                     help="the user: a service of topology.yaml, or admin (default)")
    env.set_defaults(func=cmd_env)

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
    tls = args.tls if args.tls is not None else bool(previous and previous.tls)
    secure = args.secure if args.secure is not None else bool(previous and previous.secure)
    if args.tls and args.secure is False:
        raise TidingsError("--tls goes with --secure (TLS here is SASL_SSL)")
    if args.secure is False:
        tls = False
    return LocalCluster(state_dir, brokers=brokers, base_port=port, secure=secure or tls,
                        tls=tls)


def service_users(path: Path | None) -> tuple[list[str], list[str]]:
    """The SCRAM users a secure dev cluster gets for the topology at ``path`` (or the
    default one, when it exists): each service's principal and the operator's. Returns
    (users, principals that cannot be SCRAM users, e.g. ``User:CN=...`` of certificates)."""
    from tidings.settings import Settings
    from tidings.topology import load_topology
    from tidings.topology.acls import derive_acls

    topology_path = path or Settings().topology
    if path is None and not topology_path.exists():
        return [], []
    acl_set = derive_acls(load_topology(topology_path, check_imports=False))
    users: list[str] = []
    skipped: list[str] = []
    for principal in dict.fromkeys([*acl_set.principals.values(), acl_set.operator]):
        match = _SCRAM_PRINCIPAL.match(principal)
        if match is None:
            skipped.append(principal)
        elif match.group(1) != ADMIN_USER:
            users.append(match.group(1))
    return users, skipped


def export_lines(environment: dict[str, str]) -> list[str]:
    """``export NAME=value`` lines a POSIX shell reads back (values quoted)."""
    return [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]


def _registry_for(args: argparse.Namespace, state_dir: Path) -> LocalRegistry:
    previous = LocalRegistry.from_state_dir(state_dir)
    port = args.registry_port or (previous.port if previous else DEFAULT_REGISTRY_PORT)
    return LocalRegistry(state_dir, port=port)


def cmd_up(args: argparse.Namespace) -> int:
    """Start (or find running) and print the bootstrap servers as the last line."""
    cluster = _cluster_for(args)
    users, skipped = service_users(args.file) if cluster.secure else ([], [])
    bootstrap = cluster.up(fresh=args.fresh, timeout=args.timeout)
    remember_dev_cluster(cluster.state_dir)
    security = cluster.add_users(users) if cluster.secure else None
    mode = ""
    if security is not None:
        mode = (f" ({security.protocol}, SCRAM-SHA-512, ACLs enforced: nothing is allowed "
                "without one)")
    print(f"Kafka {KAFKA_VERSION}: {cluster.brokers} broker(s) running{mode}")
    print(f"  state and data: {cluster.state_dir}")
    for node in cluster.nodes:
        print(f"  node {node.node_id}: {node.address}  log {node.log_path}")
    _print_tools(cluster.state_dir, bootstrap, security)
    if args.registry:
        registry = _registry_for(args, cluster.state_dir)
        url = registry.up(timeout=max(args.timeout, 180.0))
        version = (read_record(cluster.state_dir) or {}).get("version", "?")
        print(f"Schema registry (Apicurio {version}, in memory): log {registry.log_path}")
        print("  export TIDINGS_SCHEMA_REGISTRY_URL to use it:")
        print(url)
    if security is not None:
        _print_security(cluster, security, skipped)
        print("  stop with `tidings dev down`; export these to use it as the admin:")
        print("\n".join(export_lines(security.environment(bootstrap))))
        return 0
    print("  stop with `tidings dev down`; export KAFKA_BOOTSTRAP_SERVERS to use it:")
    print(bootstrap)
    return 0


def _print_security(cluster: LocalCluster, security: ClusterSecurity,
                    skipped: list[str]) -> None:
    users = ", ".join(sorted(security.users)) or "none yet"
    print(f"  users: {ADMIN_USER} (super-user); {users}; passwords in "
          f"{credentials_path(cluster.state_dir)} (mode 600)")
    if security.ca_path is not None:
        print(f"  TLS: certificates signed by the throwaway CA {security.ca_path}")
    if skipped:
        print(f"  no SCRAM user for {', '.join(skipped)} (not a User:<name> principal)")
    print("  ACLs: `tidings topology apply` (as the admin) creates what topology.yaml "
          "implies")
    if security.users:
        example = sorted(security.users)[0]
        print(f'  connect as a service: eval "$(tidings dev env --as {example})"')


def cmd_env(args: argparse.Namespace) -> int:
    """Print the exports that connect to the running secure cluster as one user."""
    state_dir = default_state_dir()
    cluster = LocalCluster.from_state_dir(state_dir)
    if cluster is None or not cluster.status().running:
        raise TidingsError(f"no local Kafka running (state dir {state_dir}); start one with "
                           "`tidings dev up --secure`")
    security = load_security(cluster.state_dir)
    if security is None:
        raise TidingsError(f"the local Kafka at {cluster.bootstrap} is not secure: "
                           f"KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap} is all it needs")
    print("\n".join(export_lines(security.environment(cluster.bootstrap,
                                                      security.user(args.user)))))
    return 0


def _print_tools(state_dir: Path, bootstrap: str,
                 security: ClusterSecurity | None = None) -> None:
    # The tools are a convenience: a failed download must not fail a running broker.
    bin_dir = tools_bin_dir(state_dir)
    try:
        write_tool_scripts(bin_dir)
    except TidingsError as exc:
        print(f"tidings: Kafka's command-line tools are not available: {exc}", file=sys.stderr)
        return
    first = bootstrap.split(",")[0]
    config = f" --command-config {state_dir / ADMIN_PROPERTIES}" if security else ""
    print(f"  Kafka's tools in {bin_dir}: {', '.join(TOOLS)}")
    print(f"    e.g. {bin_dir / 'kafka-consumer-groups'} --bootstrap-server {first}{config} "
          "--list")


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
        secure = ""
        if cluster is not None and cluster.security is not None:
            secure = f", {cluster.security.protocol} with ACLs (`tidings dev env`)"
        print(f"local Kafka {KAFKA_VERSION} at {status.bootstrap} (state dir {status.state_dir}"
              f"{secure})")
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

"""Plan and apply a topology against a live cluster (the I/O around :mod:`plan`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka.admin import AdminClient

from tidings.kafka_clients import admin_client, fetch_metadata
from tidings.settings import Settings, kafka_client_config
from tidings.topology import checks
from tidings.topology.acls import derive_acls
from tidings.topology.apply import ApplyResult, apply_plan
from tidings.topology.environments import LOCAL
from tidings.topology.live import count_messages, read_acls, read_cluster_state
from tidings.topology.load import TopologyInvalid, display_name
from tidings.topology.plan import ClusterState, Plan, plan_topology
from tidings.topology.source import Problem
from tidings.topology.state import read_applied, write_managed
from tidings.topology.topology import Topology


@dataclass
class ClusterView:
    """A connection to the cluster a topology targets, and what it holds now."""

    topology: Topology
    bootstrap: str
    config: dict[str, Any]
    admin: AdminClient
    state: ClusterState
    timeout: float


def connect(topology: Topology, settings: Settings | None = None) -> ClusterView:
    """Connect to the topology's cluster and read its state (raises if unreachable)."""
    settings = settings or Settings()
    config = kafka_client_config(settings, topology.cluster.properties,
                                 topology.cluster.bootstrap_servers,
                                 near=topology.root)
    bootstrap = str(config["bootstrap.servers"])
    timeout = settings.admin_timeout_s
    admin = admin_client(config)
    metadata = fetch_metadata(admin, bootstrap, timeout)
    desired = topology.desired_topics()
    applied = read_applied(config, topology.name, timeout)
    state = read_cluster_state(
        admin, metadata,
        describe=[t.name for t in desired],
        managed=applied.topics if applied else frozenset(),
        timeout=timeout,
    )
    state = replace(state, acls=read_acls(admin, timeout),
                    managed_acls=applied.acls if applied else frozenset())
    if applied is not None:
        state = replace(state, partitioner=applied.partitioner)
        if applied.partitioner != topology.cluster.partitioner:
            # Only a topic holding events has keys that can move; count them.
            state = replace(state, messages=count_messages(
                admin, metadata, [t.name for t in desired if t.origin == "declared"], timeout))
    return ClusterView(topology, bootstrap, config, admin, state, timeout)


def check_against_cluster(view: ClusterView) -> None:
    """Problems only a live cluster reveals (replication larger than the cluster)."""
    problems: list[Problem] = []
    label = f"[{view.topology.env}] " if view.topology.env != LOCAL else ""
    checks.check_replication(
        view.topology, view.state.brokers,
        lambda path, message: problems.append(Problem(view.topology.line_of(path),
                                                      label + message)),
    )
    if problems:
        raise TopologyInvalid(display_name(view.topology.path), problems)


def plan(view: ClusterView) -> Plan:
    check_against_cluster(view)
    return plan_topology(view.topology.desired_topics(), view.state,
                         view.topology.cluster.partitioner, derive_acls(view.topology))


def apply(view: ClusterView, the_plan: Plan) -> ApplyResult:
    """Apply ``the_plan`` and record the managed topics (and, on a cluster that enforces
    ACLs, the managed ACLs). Refusals must be handled first."""
    result = apply_plan(view.admin, the_plan, timeout=view.timeout)
    # Where ACLs are not enforced, what an earlier apply recorded stays recorded.
    acls = (frozenset(derive_acls(view.topology).acls) if view.state.acls is not None
            else view.state.managed_acls)
    write_managed(
        view.admin, view.config, view.topology.name,
        [t.name for t in view.topology.desired_topics()],
        view.state.brokers, view.timeout, partitioner=view.topology.cluster.partitioner,
        acls=acls,
    )
    return result

"""Cross-checks of the ``deploy:`` section against the rest of the topology."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from tidings.topology.deploy_model import EnvValue, env_problem
from tidings.topology.source import Path_
from tidings.topology.topology import Topology

Report = Callable[[Path_, str], None]


def group_partitions(topology: Topology, group: str) -> int:
    """How many members of ``group`` can hold a partition of a main topic at once.

    Retry and replay topics copy their source's partition count, so the widest
    subscribed topic bounds the useful replicas.
    """
    topics = [t for t in topology.topics_of_consumer(group) if t in topology.topics]
    return max((topology.partitions_of(t) for t in topics), default=1)


def check_deploy(topology: Topology, report: Report) -> None:
    """Report every ``deploy.services`` entry that cannot apply to its service."""
    deploy = topology.deploy
    if deploy is None:
        return
    _check_env(("deploy", "defaults", "env"), deploy.defaults.env, report)
    services = [*dict.fromkeys([*topology.producers, *topology.consumers])]
    for name, spec in deploy.services.items():
        where: Path_ = ("deploy", "services", name)
        _check_env((*where, "env"), spec.env, report)
        if name not in services:
            close = difflib.get_close_matches(name, services, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else \
                f" (declared: {', '.join(services) or 'none'})"
            report(where, f"deploy.services names {name!r}, which is neither a producer nor a "
                   f"consumer{hint}")
            continue
        is_group = name in topology.consumers
        if is_group and spec.command is not None:
            report((*where, "command"), f"{name} is a consumer group: it runs "
                   f"`tidings run {name}`, so it takes no command")
        if is_group and spec.port is not None:
            report((*where, "port"), f"{name} is a consumer group: it serves /healthz and "
                   f"/metrics on deploy.metrics_port ({deploy.metrics_port}), not on a port "
                   "of its own")
        if not is_group and spec.max_replicas is not None:
            report((*where, "max_replicas"), f"{name} is not a consumer group; only consumer "
                   "groups scale on lag (set replicas instead)")
        if is_group and spec.max_replicas is not None:
            partitions = group_partitions(topology, name)
            if spec.max_replicas > partitions:
                report((*where, "max_replicas"),
                       f"max_replicas {spec.max_replicas} of {name} is more than its "
                       f"{partitions} partitions; the extra replicas would sit idle")


def _check_env(where: Path_, env: dict[str, EnvValue], report: Report) -> None:
    for name, value in env.items():
        problem = env_problem(name, value)
        if problem:
            report((*where, name), problem)

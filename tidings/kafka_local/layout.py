"""Where each node of a local cluster keeps its files, and its ports.

Port scheme: node ``i`` (1-based) listens for clients on ``base + 2*(i-1)`` and
for the controller quorum on the next port. With the default base 19092 a
single node uses 19092/19093; three nodes use clients 19092, 19094, 19096 and
controllers 19093, 19095, 19097.

State dir layout::

    <state_dir>/cluster.json      what runs here (brokers, ports, bootstrap, version)
    <state_dir>/cluster.id        the KRaft cluster id, generated once
    <state_dir>/log4j2.properties logging config shared by the nodes
    <state_dir>/node<N>.pid       pid of node N while it runs
    <state_dir>/node<N>/server.properties
    <state_dir>/node<N>/data/     Kafka log.dirs (meta.properties once formatted)
    <state_dir>/node<N>/server.log    the broker's log (log4j)
    <state_dir>/node<N>/console.log   JVM stdout/stderr
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_PORT = 19092
HOST = "127.0.0.1"
SUPPORTED_BROKER_COUNTS = (1, 3)


@dataclass(frozen=True)
class NodeLayout:
    """Ports and paths of one combined broker+controller node."""

    node_id: int
    client_port: int
    controller_port: int
    state_dir: Path

    @property
    def home(self) -> Path:
        """This node's own directory."""
        return self.state_dir / f"node{self.node_id}"

    @property
    def config_path(self) -> Path:
        """The node's ``server.properties``; its path also identifies the JVM in ``ps``."""
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        """Kafka ``log.dirs`` (also holds the KRaft metadata log)."""
        return self.home / "data"

    @property
    def meta_properties(self) -> Path:
        """Written by ``kafka-storage format``; its presence means formatted."""
        return self.data_dir / "meta.properties"

    @property
    def log_path(self) -> Path:
        """The broker's INFO log, written by log4j."""
        return self.home / "server.log"

    @property
    def console_path(self) -> Path:
        """The JVM's stdout and stderr (startup failures, ERROR lines)."""
        return self.home / "console.log"

    @property
    def pid_path(self) -> Path:
        """Holds the JVM's pid while the node runs."""
        return self.state_dir / f"node{self.node_id}.pid"

    @property
    def address(self) -> str:
        """``host:port`` for clients."""
        return f"{HOST}:{self.client_port}"


def ports_for(brokers: int, base_port: int) -> list[int]:
    """Every port a cluster of ``brokers`` nodes starting at ``base_port`` binds."""
    return list(range(base_port, base_port + 2 * brokers))


def node_layouts(state_dir: Path, brokers: int, base_port: int) -> list[NodeLayout]:
    """The nodes of a cluster, ids 1..brokers, following the port scheme above."""
    if brokers not in SUPPORTED_BROKER_COUNTS:
        raise ValueError(f"brokers must be one of {SUPPORTED_BROKER_COUNTS}, not {brokers}")
    if not 1024 <= base_port <= 65535 - 2 * brokers:
        raise ValueError(f"base port {base_port} is out of range")
    return [
        NodeLayout(
            node_id=i,
            client_port=base_port + 2 * (i - 1),
            controller_port=base_port + 2 * (i - 1) + 1,
            state_dir=state_dir,
        )
        for i in range(1, brokers + 1)
    ]


def bootstrap_for(nodes: list[NodeLayout]) -> str:
    """Comma-separated client addresses of ``nodes``."""
    return ",".join(node.address for node in nodes)

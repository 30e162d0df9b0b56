"""Tidings' pytest plugin: fixtures for the teams who build on Tidings.

Installed with tidings (a ``pytest11`` entry point); nothing runs until a test asks
for a fixture. The project's topology is ``topology.yaml`` in pytest's root directory,
or the ``tidings_topology`` ini setting, or ``--tidings-topology PATH``.

Unit tests (no broker):

``tidings_test_broker``
    A :class:`~tidings.testing.broker.TestBroker` for the project's topology, its
    groups' databases under the test's ``tmp_path``.

Integration tests (a real broker, started once per session):

``tidings_bootstrap``
    Bootstrap servers of a real Kafka: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a
    testcontainers Kafka when Docker answers, else the local launcher (Java 17+).
``tidings_topology``
    The project's topology with its topics created on that broker. Topic names carry
    a prefix unique to the session (``tidings_topic_prefix`` sets a fixed one, ``""``
    none), so sessions sharing a cluster never see each other's events.
``tidings_publisher``
    ``tidings_publisher("order-service")``: a :class:`~tidings.Publisher` for that
    service, connected to the session's broker, closed after the test.
``run_group``
    ``run_group("inventory")`` runs the group with the production runtime until it is
    idle and returns a :class:`~tidings.testing.outcomes.GroupRun`: outcomes per
    event, retries, DLQ letters, follow-up events. A test sees only the events
    published since it started. ``run_group.query(group, sql)`` reads the group's
    database (under ``tmp_path``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported where used: every pytest session loads this plugin
    from tidings.testing.broker import TestBroker
    from tidings.testing.outcomes import GroupRun
    from tidings.topology import Topology

_TOPOLOGY_HELP = "the topology file Tidings' fixtures use (default: topology.yaml in rootdir)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tidings")
    group.addoption("--tidings-topology", default=None, metavar="PATH", help=_TOPOLOGY_HELP)
    parser.addini("tidings_topology", _TOPOLOGY_HELP, default="topology.yaml")
    parser.addini("tidings_topic_prefix",
                  "prefix for the topic names tidings_topology creates "
                  "(default: one unique to the session; '' for none)", default="auto")


@pytest.fixture(scope="session")
def tidings_topology_path(pytestconfig: pytest.Config) -> Path:
    """The project's topology file."""
    chosen = pytestconfig.getoption("tidings_topology") or pytestconfig.getini("tidings_topology")
    path = Path(str(chosen))
    return path if path.is_absolute() else pytestconfig.rootpath / path


@pytest.fixture(scope="session")
def tidings_declared_topology(tidings_topology_path: Path) -> Topology:
    """The project's topology as declared (validated, handlers imported), no broker."""
    from tidings.topology import load_topology

    return load_topology(tidings_topology_path)


@pytest.fixture
def tidings_test_broker(tidings_declared_topology: Topology,
                        tmp_path: Path) -> Iterator[TestBroker]:
    """A TestBroker for the project's topology (see :mod:`tidings.testing.broker`)."""
    from tidings.testing.broker import TestBroker

    with TestBroker(tidings_declared_topology, directory=tmp_path / "tidings") as broker:
        yield broker


@pytest.fixture(scope="session")
def tidings_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka shared by the session, stopped at its end."""
    from tidings.testing.brokers import kafka_bootstrap_servers

    with kafka_bootstrap_servers() as servers:
        yield servers


def kafka_config(topology: Topology, bootstrap: str) -> dict[str, Any]:
    """The client config for ``bootstrap`` (plus the topology's and TIDINGS_KAFKA_*
    properties, as the services use them)."""
    from tidings.settings import Settings, kafka_client_config

    config = kafka_client_config(Settings(KAFKA_BOOTSTRAP_SERVERS=bootstrap),
                                 topology.cluster.properties, None, near=topology.root)
    config["bootstrap.servers"] = bootstrap
    return config


@pytest.fixture(scope="session")
def tidings_topology(pytestconfig: pytest.Config, tidings_declared_topology: Topology,
                     tidings_bootstrap: str) -> Topology:
    """The project's topology, its topics (session-prefixed) created on the broker."""
    from tidings.settings import Settings
    from tidings.testing.live import prefixed
    from tidings.topology import sync

    prefix = str(pytestconfig.getini("tidings_topic_prefix"))
    if prefix == "auto":
        prefix = f"t{uuid.uuid4().hex[:6]}-"
    topology = prefixed(tidings_declared_topology, prefix)
    view = sync.connect(topology, Settings(KAFKA_BOOTSTRAP_SERVERS=tidings_bootstrap))
    sync.apply(view, sync.plan(view))
    return topology


@pytest.fixture
def tidings_publisher(tidings_topology: Topology,
                      tidings_bootstrap: str) -> Iterator[Callable[[str], Any]]:
    """``tidings_publisher(service)``: a Publisher for ``service`` on the session broker."""
    from tidings.producer.publisher import Publisher

    made: list[Publisher] = []

    def publisher(service: str) -> Publisher:
        made.append(Publisher(tidings_topology, service,
                              producer_config=kafka_config(tidings_topology, tidings_bootstrap)))
        return made[-1]

    yield publisher
    for each in made:
        each.close()


class GroupRunner:
    """``run_group(name)``: run a consumer group on the session broker until idle."""

    def __init__(self, topology: Topology, config: dict[str, Any], directory: Path) -> None:
        from tidings.testing.live import end_offsets, topic_partitions

        self.topology = topology
        self.config = config
        self.directory = directory
        self._groups: dict[str, Any] = {}
        # Where this test begins: events already on the topics belong to earlier tests.
        topics = [t.name for t in topology.desired_topics()]
        self._start = end_offsets(config, topic_partitions(topology, topics))

    def __call__(self, group: str, *, timeout: float = 60.0,
                 wait_retries: bool = True) -> GroupRun:
        """Run ``group`` until idle (see :meth:`tidings.testing.live.LiveGroup.run`)."""
        from tidings.testing.live import LiveGroup

        live = self._groups.get(group)
        if live is None:
            live = LiveGroup(self.topology, group, self.config, self.database_url(group),
                             start=self._start)
            self._groups[group] = live
        run: GroupRun = live.run(timeout=timeout, wait_retries=wait_retries)
        return run

    def database_url(self, group: str) -> str:
        return f"sqlite:///{self.directory / f'{group}.db'}"

    def query(self, group: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT on the group's database (``?`` placeholders)."""
        from tidings.db import open_database

        database = open_database(self.database_url(group))
        connection = database.connect()
        try:
            return [tuple(r) for r in connection.execute(database.sql(sql), params).fetchall()]
        finally:
            connection.close()


@pytest.fixture
def run_group(tidings_topology: Topology, tidings_bootstrap: str,
              tmp_path: Path) -> GroupRunner:
    """``run_group(name)`` -> GroupRun; its databases live under ``tmp_path``."""
    directory = tmp_path / "tidings-groups"
    directory.mkdir(parents=True, exist_ok=True)
    return GroupRunner(tidings_topology, kafka_config(tidings_topology, tidings_bootstrap),
                       directory)

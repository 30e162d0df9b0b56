"""One three-broker cluster for the whole chaos suite (RF 3, min.insync.replicas 2).

Every test of tests/chaos kills, stops and restarts its nodes; each leaves all three
running for the next. The cluster is stopped by pid at the session's end, failed
tests included (tidings.testing.local_kafka).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.kafka_local import LocalCluster
from tidings.testing import local_kafka

sys.path.insert(0, str(Path(__file__).parent))
# tests/integration/process_support.py: `tidings run` processes, stopped by pid.
sys.path.insert(1, str(Path(__file__).parents[1] / "integration"))

#: Failover in seconds, not the production defaults' tens of seconds: a killed node is
#: fenced (and its leaderships moved) 4 s after its last heartbeat instead of 9 s.
FAST_FAILOVER = {
    "broker.session.timeout.ms": 4000,
    "broker.heartbeat.interval.ms": 1000,
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
}


@pytest.fixture(scope="session")
def three_brokers() -> Iterator[LocalCluster]:
    with local_kafka(3, overrides=FAST_FAILOVER) as cluster:
        yield cluster


@pytest.fixture
def healthy(three_brokers: LocalCluster) -> Iterator[LocalCluster]:
    """The cluster with every node up before and after the test."""
    three_brokers.up(timeout=120)
    yield three_brokers
    three_brokers.up(timeout=120)

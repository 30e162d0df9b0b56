"""Test support for Tidings and for the teams who build on it.

``tidings.testing`` gives :class:`TestBroker` for unit tests of consumer groups
(their production processing, Kafka replaced by memory), real brokers for
integration tests (an existing cluster, a container, or the local launcher), a
real schema registry (an existing one, or Apicurio from the launcher), a throwaway
PostgreSQL, and the pytest plugin (:mod:`tidings.testing.plugin`).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tidings.testing.brokers import (
    KAFKA_CONTAINER_IMAGE,
    SecureKafka,
    docker_available,
    kafka_bootstrap_servers,
    local_cluster,
    local_kafka,
    secure_local_kafka,
)
from tidings.testing.registry import local_registry, schema_registry_url

if TYPE_CHECKING:
    from tidings.testing.broker import TestBroker
    from tidings.testing.outcomes import EventOutcome, GroupRun, OutcomeMismatch, Sent

# Loaded on first use: the pytest plugin imports this package in every test session.
_LAZY = {
    "TestBroker": "tidings.testing.broker",
    "EventOutcome": "tidings.testing.outcomes",
    "GroupRun": "tidings.testing.outcomes",
    "OutcomeMismatch": "tidings.testing.outcomes",
    "Sent": "tidings.testing.outcomes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidings.testing' has no attribute {name!r}")

__all__ = [
    "KAFKA_CONTAINER_IMAGE",
    "EventOutcome",
    "GroupRun",
    "OutcomeMismatch",
    "SecureKafka",
    "Sent",
    "TestBroker",
    "docker_available",
    "kafka_bootstrap_servers",
    "local_cluster",
    "local_kafka",
    "local_registry",
    "schema_registry_url",
    "secure_local_kafka",
]

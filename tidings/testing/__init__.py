"""Test support for Tidings and for the teams who build on it.

``tidings.testing`` gives real brokers for integration tests (an existing
cluster, a container, or the local launcher), a real schema registry (an existing
one, or Apicurio from the launcher) and a throwaway PostgreSQL.
"""

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

__all__ = [
    "KAFKA_CONTAINER_IMAGE",
    "SecureKafka",
    "docker_available",
    "kafka_bootstrap_servers",
    "local_cluster",
    "local_kafka",
    "local_registry",
    "schema_registry_url",
    "secure_local_kafka",
]

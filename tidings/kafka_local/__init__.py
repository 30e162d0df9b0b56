"""A local Apache Kafka (KRaft) for development and tests, run from Maven Central jars.

Used by ``tidings dev up|down|status`` and by :mod:`tidings.testing` when no
``KAFKA_BOOTSTRAP_SERVERS`` and no Docker engine are available. Needs Java 17+
and, once, Maven to fetch the jars.
"""

from tidings.kafka_local.artifacts import KAFKA_VERSION, ensure_kafka_libs
from tidings.kafka_local.cluster import (
    ClusterStatus,
    LocalCluster,
    NodeStatus,
    default_state_dir,
    forget_dev_cluster,
    remember_dev_cluster,
    running_bootstrap,
)
from tidings.kafka_local.layout import DEFAULT_BASE_PORT

__all__ = [
    "DEFAULT_BASE_PORT",
    "KAFKA_VERSION",
    "ClusterStatus",
    "LocalCluster",
    "NodeStatus",
    "default_state_dir",
    "ensure_kafka_libs",
    "forget_dev_cluster",
    "remember_dev_cluster",
    "running_bootstrap",
]

"""topology.yaml as code: the model, validation, and plan/apply against a cluster."""

from tidings.topology.load import TopologyInvalid, load_topology
from tidings.topology.topology import (
    DesiredTopic,
    Topology,
    dlq_topic_name,
    replay_topic_name,
    replies_topic_name,
    retry_topic_name,
)

__all__ = [
    "DesiredTopic",
    "Topology",
    "TopologyInvalid",
    "dlq_topic_name",
    "load_topology",
    "replay_topic_name",
    "replies_topic_name",
    "retry_topic_name",
]

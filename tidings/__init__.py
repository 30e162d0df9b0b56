"""Tidings: event-streaming pub/sub on Apache Kafka.

The names most code needs are importable from here; they load lazily, so that
``import tidings`` stays cheap for the CLI and free of import cycles.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tidings.errors import BrokerUnavailable, ConfigError, TidingsError

if TYPE_CHECKING:
    from tidings.codec.events import Event, Record
    from tidings.consumer.context import BatchContext, HandlerContext, NonRetryableError
    from tidings.producer.outbox import Outbox, OutboxRelay
    from tidings.producer.publisher import Publisher
    from tidings.topology import Topology, load_topology

_LAZY = {
    "Publisher": "tidings.producer.publisher",
    "Outbox": "tidings.producer.outbox",
    "OutboxRelay": "tidings.producer.outbox",
    "Event": "tidings.codec.events",
    "Record": "tidings.codec.events",
    "HandlerContext": "tidings.consumer.context",
    "BatchContext": "tidings.consumer.context",
    "NonRetryableError": "tidings.consumer.context",
    "Topology": "tidings.topology",
    "load_topology": "tidings.topology",
}

__all__ = ["BatchContext", "BrokerUnavailable", "ConfigError", "Event", "HandlerContext",
           "NonRetryableError", "Outbox", "OutboxRelay", "Publisher", "Record",
           "TidingsError", "Topology", "load_topology"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidings' has no attribute {name!r}")

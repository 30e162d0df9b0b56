"""Tidings: event streaming pub/sub on Apache Kafka."""

from tidings.errors import BrokerUnavailable, ConfigError, TidingsError

__all__ = ["BrokerUnavailable", "ConfigError", "TidingsError"]
__version__ = "0.1.0"

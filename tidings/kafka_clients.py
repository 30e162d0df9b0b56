"""Build confluent-kafka clients the same way everywhere.

librdkafka prints connection failures straight to stderr; we route its log into
Python logging (``tidings.librdkafka``) so a user sees our one-line error rather
than a screenful of retries, and a developer can still turn the log on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, OffsetSpec

from tidings.errors import BrokerUnavailable

LIBRDKAFKA_LOGGER = logging.getLogger("tidings.librdkafka")


def with_logger(config: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(config)
    merged.setdefault("logger", LIBRDKAFKA_LOGGER)
    return merged


def admin_client(config: Mapping[str, Any]) -> AdminClient:
    return AdminClient(with_logger(config))


def fetch_metadata(admin: AdminClient, bootstrap: str, timeout: float) -> ClusterMetadata:
    """Cluster metadata, or :class:`BrokerUnavailable` naming where we looked."""
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {bootstrap} within {timeout:g}s "
            f"({exc.args[0].str() if exc.args else exc}); start one with `tidings dev up` "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None


def earliest_offset() -> Any:
    """``OffsetSpec.earliest()``; confluent-kafka's stubs leave it untyped in some versions."""
    return OffsetSpec.earliest()  # type: ignore[no-untyped-call, unused-ignore]


def latest_offset() -> Any:
    """``OffsetSpec.latest()`` (see :func:`earliest_offset`)."""
    return OffsetSpec.latest()  # type: ignore[no-untyped-call, unused-ignore]


# librdkafka logs every failed connection attempt at level ERROR; keep them out of a
# user's terminal unless logging is configured to show them.
LIBRDKAFKA_LOGGER.addHandler(logging.NullHandler())
LIBRDKAFKA_LOGGER.propagate = False

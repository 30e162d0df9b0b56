"""Build confluent-kafka clients the same way everywhere.

librdkafka prints connection failures straight to stderr; we route its log into
Python logging (``tidings.librdkafka``) so a user sees our one-line error rather
than a screenful of retries, and a developer can still turn the log on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, OffsetSpec

from tidings.errors import AuthenticationFailed, BrokerUnavailable

LIBRDKAFKA_LOGGER = logging.getLogger("tidings.librdkafka")
#: librdkafka's codes for a login the cluster refused: SASL, and the TLS handshake.
_LOGIN_ERRORS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})


def with_logger(config: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(config)
    merged.setdefault("logger", LIBRDKAFKA_LOGGER)
    return merged


class LoginWatch:
    """An ``error_cb`` that remembers the first refused login of a client, so that a
    timeout can be explained as what it is (wrong password, untrusted certificate)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.bootstrap = str(config.get("bootstrap.servers", "?"))
        self.username = config.get("sasl.username")
        self.mechanism = config.get("sasl.mechanism") or "PLAIN"
        self.protocol = str(config.get("security.protocol", "plaintext")).upper()
        self.error: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if self.error is None and error.code() in _LOGIN_ERRORS:
            self.error = error

    def explain(self) -> str | None:
        """One line naming who was refused where, and why (never the secret); None while
        no login was refused."""
        if self.error is None:
            return None
        reason = self.error.str().split(" (after ", 1)[0]
        # "sasl_ssl://127.0.0.1:9092/bootstrap: SASL authentication error: ...": the
        # address is said once, below.
        reason = re.sub(r"^\w+://\S+: ", "", reason)
        if self.error.code() == KafkaError._SSL:
            return (f"the TLS handshake with the Kafka cluster at {self.bootstrap} failed "
                    f"({reason}); check TIDINGS_KAFKA_SSL_CA_LOCATION")
        who = f"User:{self.username}" if self.username else "the client (no sasl.username)"
        return (f"the Kafka cluster at {self.bootstrap} refused the login of {who} "
                f"({self.protocol} {self.mechanism}): {reason}; check "
                "TIDINGS_KAFKA_SASL_USERNAME and TIDINGS_KAFKA_SASL_PASSWORD")


def watching_logins(config: Mapping[str, Any]) -> tuple[dict[str, Any], LoginWatch]:
    """``config`` with our logger and a :class:`LoginWatch` as its ``error_cb``."""
    watch = LoginWatch(config)
    merged = with_logger(config)
    merged.setdefault("error_cb", watch)
    return merged, watch


def admin_client(config: Mapping[str, Any]) -> AdminClient:
    merged, watch = watching_logins(config)
    admin = AdminClient(merged)
    admin.tidings_login = watch  # type: ignore[attr-defined,unused-ignore]  # stubs differ by version
    return admin


def login_refused(client: Any) -> str | None:
    """Why ``client`` (made by :func:`admin_client`) could not log in, if it could not.
    Serves the client's queued callbacks first: librdkafka reports errors only there."""
    watch = getattr(client, "tidings_login", None)
    if not isinstance(watch, LoginWatch):
        return None
    client.poll(0)
    return watch.explain()


def fetch_metadata(admin: AdminClient, bootstrap: str, timeout: float) -> ClusterMetadata:
    """Cluster metadata, or :class:`BrokerUnavailable` naming where we looked
    (:class:`AuthenticationFailed`, within a second or so, when the cluster refused
    our login rather than letting the whole timeout run out)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            return admin.list_topics(timeout=max(0.1, min(1.0, remaining)))
        except KafkaException as exc:
            refused = login_refused(admin)
            if refused is not None:
                raise AuthenticationFailed(refused) from None
            if time.monotonic() < deadline:
                continue
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

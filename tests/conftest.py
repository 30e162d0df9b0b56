"""Shared fixtures: a real Kafka broker (DESIGN.md, "The broker is real")."""

from __future__ import annotations

import contextlib
import importlib.util
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tidings.testing import SecureKafka, secure_local_kafka
from tidings.testing.postgres import postgres_available, postgres_server


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    # pytest tears fixtures down on KeyboardInterrupt; a bare SIGTERM (CI job
    # cancelled, `timeout`) would end the process without any teardown.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


@pytest.fixture(scope="session")
def kafka_bootstrap(tidings_bootstrap: str) -> str:
    """Bootstrap servers of a real Kafka shared by the session, stopped at its end.

    The same broker as the tidings pytest plugin's ``tidings_bootstrap``
    (tidings/testing/plugin.py): ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a
    testcontainers Kafka when Docker answers, else a single node from the local
    launcher on free ports. One broker per session, whichever name a test uses.
    """
    return tidings_bootstrap


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureKafka]:
    """A secure broker shared by the session (SASL_SSL, SCRAM-SHA-512, ACLs enforced,
    an admin super-user), from the local launcher; stopped by pid at the session's end.
    Tests create the users they need with ``secure_kafka.add_users(...)``."""
    with secure_local_kafka(tls=True) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL shared by the session, stopped at its end.

    ``TIDINGS_TEST_POSTGRES_URL`` if set, else a throwaway server from the local
    PostgreSQL binaries; the test is skipped, saying why, when there are none.
    """
    reason = postgres_available()
    if reason is not None:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("PostgreSQL tests need psycopg (pip install 'psycopg[binary]')")
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[str]:
    """Confluent-compatible URL of a real schema registry shared by the session.

    ``TIDINGS_TEST_SCHEMA_REGISTRY_URL`` if set, else Apicurio Registry from the local
    launcher (in-memory storage), stopped at the session's end. Skipped, saying why,
    when there is no Java for it or it cannot be downloaded.
    """
    from tidings.kafka_local.registry import RegistryNotInstallable
    from tidings.testing.registry import schema_registry_url

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(schema_registry_url())
        except RegistryNotInstallable as exc:
            pytest.skip(f"schema registry unavailable: {exc}")
        yield url

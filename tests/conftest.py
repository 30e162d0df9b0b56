"""Shared fixtures: a real Kafka broker (DESIGN.md, "The broker is real")."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tidings.testing import kafka_bootstrap_servers


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    # pytest tears fixtures down on KeyboardInterrupt; a bare SIGTERM (CI job
    # cancelled, `timeout`) would end the process without any teardown.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka shared by the session, stopped at its end.

    ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a testcontainers Kafka when Docker
    answers, else a single node from the local launcher on free ports.
    """
    with kafka_bootstrap_servers() as servers:
        yield servers

"""A real schema registry for tests: an existing one, or Apicurio from the launcher.

Everything started here is stopped when the context manager exits, including on
test failures; a watchdog process also stops it if the test process is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tidings.kafka_local import watchdog
from tidings.kafka_local.ports import find_free_base_port
from tidings.kafka_local.registry import LocalRegistry
from tidings.testing.brokers import stop_process

REGISTRY_URL_ENV = "TIDINGS_TEST_SCHEMA_REGISTRY_URL"
"""Set it to a Confluent-compatible API URL to test against that registry instead."""


@contextlib.contextmanager
def local_registry(timeout: float = 240) -> Iterator[LocalRegistry]:
    """Apicurio Registry (in-memory storage) on free ports in a temp dir.

    Raises :class:`~tidings.kafka_local.registry.RegistryNotInstallable` when there is
    no Java for it or it cannot be downloaded (a test should skip then), and
    :class:`~tidings.errors.TidingsError` when it is installed but does not start.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="tidings-registry-"))
    # Two consecutive free ports: the API and Quarkus' management interface.
    registry = LocalRegistry(state_dir, port=find_free_base_port(2))
    guard = watchdog.spawn(state_dir, remove=True)
    atexit.register(registry.down)
    try:
        registry.up(timeout=timeout)
        yield registry
    finally:
        try:
            registry.down()
        finally:
            atexit.unregister(registry.down)
            stop_process(guard)
            shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.contextmanager
def schema_registry_url() -> Iterator[str]:
    """The Confluent-compatible URL of a real registry, started if need be.

    ``TIDINGS_TEST_SCHEMA_REGISTRY_URL`` when set (used as is, nothing stopped), else
    a local Apicurio for as long as the block runs.
    """
    configured = os.environ.get(REGISTRY_URL_ENV, "").strip()
    if configured:
        yield configured.rstrip("/")
        return
    with local_registry() as registry:
        yield registry.url

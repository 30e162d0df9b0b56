"""Real Kafka brokers for tests: an existing cluster, a container, or the local launcher.

See DESIGN.md, "The broker is real". Everything started here is stopped when
the context manager exits, including on test failures; a watchdog process
also stops launcher clusters if the test process is killed outright.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidings.kafka_local import LocalCluster, watchdog
from tidings.kafka_local.ports import find_free_base_port
from tidings.kafka_local.security import ADMIN_USER, ClusterSecurity

KAFKA_CONTAINER_IMAGE = "confluentinc/cp-kafka:7.9.0"
"""Image for the Docker path (testcontainers' KafkaContainer drives Confluent images)."""

_DOCKER_PING_TIMEOUT_S = 5


def docker_available() -> bool:
    """True when a Docker engine answers a ping within a few seconds."""
    try:
        docker = importlib.import_module("docker")
        client = docker.from_env(timeout=_DOCKER_PING_TIMEOUT_S)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, daemon down: all mean "no Docker"
        return False


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    try:
        module = importlib.import_module("testcontainers.community.kafka")
    except ImportError:
        module = importlib.import_module("testcontainers.kafka")
    container = module.KafkaContainer(KAFKA_CONTAINER_IMAGE).with_kraft()
    container.start()
    try:
        yield str(container.get_bootstrap_server())
    finally:
        container.stop()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a helper process we started (a watchdog), SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def local_kafka(brokers: int = 1, timeout: float = 120, *, secure: bool = False,
                tls: bool = False, overrides: Mapping[str, object] | None = None
                ) -> Iterator[LocalCluster]:
    """A launcher cluster of ``brokers`` nodes in a temp dir on free ports.

    Yields the running :class:`LocalCluster` (for tests that stop and restart
    nodes); it is stopped and its directory deleted on exit. ``secure``/``tls`` and
    ``overrides`` are :class:`LocalCluster`'s. The state dir is ``<temp>/dev``, so
    ``TIDINGS_STATE_DIR=<temp>`` points ``tidings dev ...`` at it.
    """
    root = Path(tempfile.mkdtemp(prefix="tidings-kafka-"))
    state_dir = root / "dev"
    # Free ports picked at random, never 19092, so tests do not collide with a
    # developer's `tidings dev up` or with a parallel test run.
    cluster = LocalCluster(state_dir, brokers=brokers, base_port=find_free_base_port(2 * brokers),
                           secure=secure, tls=tls, overrides=dict(overrides or {}))
    state_dir.mkdir()
    guard = watchdog.spawn(state_dir, remove=True)
    # atexit covers a SystemExit/KeyboardInterrupt that skips our finally block.
    atexit.register(cluster.down)
    try:
        cluster.up(timeout=timeout)
        yield cluster
    finally:
        try:
            cluster.down()
        finally:
            atexit.unregister(cluster.down)
            stop_process(guard)
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class SecureKafka:
    """A running secure launcher cluster (SASL/SCRAM, ACLs enforced), and how to reach
    it as its admin or as any user created on it."""

    cluster: LocalCluster

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def security(self) -> ClusterSecurity:
        assert self.cluster.security is not None
        return self.cluster.security

    @property
    def state_root(self) -> Path:
        """What ``TIDINGS_STATE_DIR`` must be for ``tidings dev ...`` to find it."""
        return self.cluster.state_dir.parent

    def config(self, user: str = ADMIN_USER, **overrides: Any) -> dict[str, Any]:
        """librdkafka settings connecting as ``user``."""
        security = self.security
        return {"bootstrap.servers": self.bootstrap,
                **security.client_properties(security.user(user)), **overrides}

    def env(self, user: str = ADMIN_USER) -> dict[str, str]:
        """``KAFKA_BOOTSTRAP_SERVERS`` and ``TIDINGS_KAFKA_*`` for a process run as
        ``user``."""
        return self.security.environment(self.bootstrap, self.security.user(user))

    def add_users(self, *usernames: str) -> None:
        """Create SCRAM users (random passwords) unless they exist."""
        self.cluster.add_users(list(usernames))


@contextlib.contextmanager
def secure_local_kafka(brokers: int = 1, *, tls: bool = True,
                       timeout: float = 120) -> Iterator[SecureKafka]:
    """A fresh secure launcher cluster: SASL_SSL (SASL_PLAINTEXT without ``tls``),
    SCRAM-SHA-512, KRaft's StandardAuthorizer denying whatever no ACL allows, and an
    admin super-user; stopped (by pid) and deleted on exit."""
    with local_kafka(brokers, timeout, secure=True, tls=tls) as cluster:
        yield SecureKafka(cluster)


@contextlib.contextmanager
def local_cluster(brokers: int, timeout: float = 120) -> Iterator[str]:
    """Bootstrap servers of a fresh launcher cluster of ``brokers`` nodes (1 or 3).

    Always uses the local launcher (never Docker or ``KAFKA_BOOTSTRAP_SERVERS``)
    because multi-broker tests need to know exactly what they run against.
    """
    with local_kafka(brokers, timeout=timeout) as cluster:
        yield cluster.bootstrap


@contextlib.contextmanager
def kafka_bootstrap_servers() -> Iterator[str]:
    """Bootstrap servers of a real Kafka, started if need be and stopped on exit.

    Resolution order: ``KAFKA_BOOTSTRAP_SERVERS`` (used as is, nothing stopped);
    a Docker engine (testcontainers' KRaft Kafka); else a single-node cluster
    from the local launcher (Java 17+; jars fetched from Maven Central once).
    """
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        yield configured
        return
    with contextlib.ExitStack() as stack:
        bootstrap: str | None = None
        if docker_available():
            try:
                bootstrap = stack.enter_context(_kafka_container())
            except Exception as exc:  # e.g. the image cannot be pulled
                warnings.warn(
                    f"Docker answers but the Kafka container did not start ({exc}); "
                    "using the local launcher instead",
                    stacklevel=2,
                )
        if bootstrap is None:
            bootstrap = stack.enter_context(local_cluster(1))
        yield bootstrap

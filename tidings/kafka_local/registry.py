"""A local schema registry: Apicurio Registry, serving the Confluent-compatible API.

Apicurio is on Maven Central as a ready-to-run Quarkus build (see
:func:`tidings.kafka_local.artifacts.ensure_apicurio`). It keeps its schemas in an
in-memory H2 database, so every start begins empty, like a fresh test broker.
Clients talk to ``http://127.0.0.1:<port>/apis/ccompat/v7``, which confluent-kafka's
``SchemaRegistryClient`` treats as a Confluent Schema Registry.

Apicurio 3.3 needs Java 21+; with only Java 17 installed, 3.0.9 (the last release
that runs on 17) is used instead. Files in the state dir (shared with the Kafka
nodes of ``tidings dev``)::

    <state_dir>/registry.json         port, version, Java and URL of the last `up`
    <state_dir>/registry.pid          the registry JVM's pid while it runs
    <state_dir>/registry/console.log  its log (Quarkus writes to stdout)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidings.errors import TidingsError
from tidings.kafka_local.artifacts import ensure_apicurio, runner_jar
from tidings.kafka_local.java import JavaRuntime, installed_javas, newest_java
from tidings.kafka_local.layout import HOST
from tidings.kafka_local.ports import ensure_ports_free
from tidings.kafka_local.processes import is_owned_java, read_pid, terminate, write_pid
from tidings.kafka_local.state_files import read_json_record, tail, write_atomic

APICURIO_VERSION = "3.3.3"
"""The Apicurio Registry release run when Java 21+ is installed."""
APICURIO_MIN_JAVA = 21
APICURIO_FALLBACK_VERSION = "3.0.9"
"""The last release that runs on Java 17, used when nothing newer is installed."""
APICURIO_FALLBACK_MIN_JAVA = 17

DEFAULT_REGISTRY_PORT = 18081
CCOMPAT_PATH = "/apis/ccompat/v7"
RECORD_FILE = "registry.json"
PID_FILE = "registry.pid"


class RegistryNotInstallable(TidingsError):
    """No Java new enough, or Apicurio could not be downloaded: nothing to start."""


@dataclass(frozen=True)
class RegistryRuntime:
    """Which Apicurio release runs on which Java."""

    version: str
    java: JavaRuntime


def choose_runtime(javas: list[JavaRuntime] | None = None) -> RegistryRuntime:
    """Apicurio 3.3 on the newest installed Java if it is 21+, else 3.0.9 on Java 17+."""
    newest = newest_java(installed_javas() if javas is None else javas)
    if newest is not None and newest.major >= APICURIO_MIN_JAVA:
        return RegistryRuntime(APICURIO_VERSION, newest)
    if newest is not None and newest.major >= APICURIO_FALLBACK_MIN_JAVA:
        return RegistryRuntime(APICURIO_FALLBACK_VERSION, newest)
    found = f"the newest Java found is {newest.major} ({newest.path})" if newest else \
        "no Java was found"
    raise RegistryNotInstallable(
        f"the local schema registry needs Java {APICURIO_FALLBACK_MIN_JAVA}+ "
        f"({APICURIO_MIN_JAVA}+ for Apicurio {APICURIO_VERSION}), but {found}: install a "
        "JDK or point cluster.schema_registry_url at an existing registry"
    )


@dataclass(frozen=True)
class RegistryStatus:
    """What the registry of a state dir is doing."""

    pid: int | None
    alive: bool
    port: int
    url: str
    version: str | None
    log_path: Path


def registry_url(port: int, host: str = HOST) -> str:
    """The Confluent-compatible API of a registry listening on ``port``."""
    return f"http://{host}:{port}{CCOMPAT_PATH}"


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url/subjects`` answers 200 (the registry is up and serving)."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class LocalRegistry:
    """An Apicurio Registry rooted at ``state_dir``, on ``port`` (its management
    interface, which Quarkus always opens, takes ``port + 1``)."""

    state_dir: Path
    port: int = DEFAULT_REGISTRY_PORT
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Absolute, because the home path inside the JVM's argv identifies it.
        self.state_dir = Path(self.state_dir).expanduser().resolve()

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> LocalRegistry | None:
        """The registry last brought up in ``state_dir``, if any."""
        record = read_record(Path(state_dir).expanduser().resolve())
        if record is None:
            return None
        try:
            return cls(state_dir, port=int(record["port"]))
        except (KeyError, TypeError, ValueError):
            return None

    # ------------------------------------------------------------------ paths

    @property
    def home(self) -> Path:
        """The registry's own directory (log, temp files)."""
        return self.state_dir / "registry"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / PID_FILE

    @property
    def log_path(self) -> Path:
        return self.home / "console.log"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/apis/ccompat/v7``: what clients are given."""
        return registry_url(self.port)

    @property
    def marker(self) -> str:
        """The JVM argument that tells our registry from any other java process."""
        return f"-Dtidings.registry.home={self.home}"

    # ----------------------------------------------------------------- status

    def live_pid(self) -> int | None:
        """The registry JVM's pid while it runs (verified against the process table)."""
        pid = read_pid(self.pid_path)
        if pid is not None and is_owned_java(pid, self.marker):
            return pid
        return None

    def status(self) -> RegistryStatus:
        pid = read_pid(self.pid_path)
        record = read_record(self.state_dir) or {}
        return RegistryStatus(
            pid=pid, alive=self.live_pid() is not None, port=self.port, url=self.url,
            version=record.get("version"), log_path=self.log_path,
        )

    # --------------------------------------------------------------------- up

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".registry.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def prepare(self) -> tuple[RegistryRuntime, Path]:
        """Pick the Java and release, and download the release once.

        Raises :class:`RegistryNotInstallable` when either is impossible.
        """
        return self.prepare_static()

    @staticmethod
    def prepare_static() -> tuple[RegistryRuntime, Path]:
        """:meth:`prepare`, without a registry to start (``tidings.kafka_local.fetch``)."""
        runtime = choose_runtime()
        try:
            app = ensure_apicurio(runtime.version)
        except RegistryNotInstallable:
            raise
        except TidingsError as exc:
            raise RegistryNotInstallable(str(exc)) from None
        return runtime, app

    def up(self, timeout: float = 180) -> str:
        """Start the registry unless it runs, wait until it answers; returns its URL.

        Raises :class:`RegistryNotInstallable` (no Java, no download) or
        :class:`TidingsError` (ports taken, the JVM died or did not answer in time).
        """
        with self._locked():
            deadline = time.monotonic() + timeout
            if self.live_pid() is not None:
                self._wait_ready(None, deadline)
                return self.url
            self.pid_path.unlink(missing_ok=True)
            ensure_ports_free(
                (self.port, self.port + 1),
                hint="(another registry?); run `tidings dev down` or choose --registry-port",
            )
            runtime, app = self.prepare()
            self.home.mkdir(parents=True, exist_ok=True)
            (self.home / "tmp").mkdir(exist_ok=True)
            with self.log_path.open("wb") as console:
                proc = subprocess.Popen(
                    self.command(runtime, app),
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    cwd=self.home,
                    # Its own session: Ctrl-C in the shell that ran `up` must not stop it.
                    start_new_session=True,
                )
            self._proc = proc
            write_pid(self.pid_path, proc.pid)
            write_atomic(self.state_dir / RECORD_FILE, json.dumps({
                "port": self.port, "url": self.url, "version": runtime.version,
                "java": str(runtime.java.path), "java_major": runtime.java.major,
            }, indent=2) + "\n")
            try:
                self._wait_ready(proc, deadline)
            except BaseException:
                self._stop(timeout=10)
                raise
            return self.url

    def command(self, runtime: RegistryRuntime, app: Path) -> list[str]:
        """The JVM command line: in-memory storage, loopback only, our ports."""
        tmp = self.home / "tmp"
        return [
            str(runtime.java.path),
            self.marker,
            "-Xms64m",
            "-Xmx384m",
            "-XX:+UseSerialGC",
            # C1 only, as for the brokers: startup matters, peak throughput does not.
            "-XX:TieredStopAtLevel=1",
            f"-Djava.io.tmpdir={tmp}",
            f"-Dquarkus.http.host={HOST}",
            f"-Dquarkus.http.port={self.port}",
            # Quarkus opens a management interface on 0.0.0.0:9000 by default; two
            # registries (two test runs) would collide there.
            f"-Dquarkus.management.host={HOST}",
            f"-Dquarkus.management.port={self.port + 1}",
            "-Dapicurio.storage.kind=sql",
            "-Dapicurio.storage.sql.kind=h2",
            "-Dapicurio.datasource.url=jdbc:h2:mem:registry",
            f"-Dapicurio.storage.snapshot.location={tmp}",
            f"-Dapicurio.import.work-dir={tmp}",
            # One access-log line per request drowns the interesting lines.
            '-Dquarkus.log.category."io.quarkus.http.access-log".level=WARN',
            "-jar",
            str(runner_jar(app)),
        ]

    def _wait_ready(self, proc: subprocess.Popen[bytes] | None, deadline: float) -> None:
        while True:
            if proc is not None and proc.poll() is not None:
                raise self._startup_error(f"exited with code {proc.returncode}")
            if proc is None and self.live_pid() is None:
                raise self._startup_error("is not running")
            if answers(self.url):
                return
            if time.monotonic() > deadline:
                raise self._startup_error("did not answer in time")
            time.sleep(0.25)

    def _startup_error(self, what: str) -> TidingsError:
        lines = tail(self.log_path) or ["(log is empty)"]
        body = "\n".join(f"  {line[:300]}" for line in lines)
        return TidingsError(
            f"local schema registry (port {self.port}) {what}; last lines of "
            f"{self.log_path}:\n{body}"
        )

    # ------------------------------------------------------------------- down

    def _stop(self, timeout: float) -> None:
        pid = read_pid(self.pid_path)
        if pid is None and self._proc is not None:
            pid = self._proc.pid
        if pid is not None:
            terminate([(pid, self.marker)], timeout)
        if self._proc is not None:
            self._proc.poll()  # collect the exit status so no zombie remains
            self._proc = None
        self.pid_path.unlink(missing_ok=True)

    def down(self, timeout: float = 20) -> None:
        """Stop the registry JVM (by its pid file, only if its argv carries our marker):
        SIGTERM, then SIGKILL after ``timeout``. Safe to call when nothing runs."""
        if not self.state_dir.is_dir():
            return
        with self._locked():
            self._stop(timeout)


def read_record(state_dir: Path) -> dict[str, Any] | None:
    """The ``registry.json`` written by the last ``up`` in ``state_dir``, if any."""
    return read_json_record(state_dir / RECORD_FILE)



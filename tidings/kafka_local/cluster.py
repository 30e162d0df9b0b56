"""Start, stop and inspect a local KRaft Kafka cluster of 1 or 3 nodes.

Every node is a combined broker+controller JVM started in the background
from the Maven Central jars (see :mod:`tidings.kafka_local.artifacts`). All
state lives in one directory (see :mod:`tidings.kafka_local.layout`), so
several clusters can coexist as long as they use different dirs and ports.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from tidings.errors import TidingsError
from tidings.kafka_local.artifacts import KAFKA_VERSION, ensure_kafka_libs
from tidings.kafka_local.java import find_java
from tidings.kafka_local.layout import (
    DEFAULT_BASE_PORT,
    NodeLayout,
    bootstrap_for,
    node_layouts,
)
from tidings.kafka_local.ports import ensure_ports_free, port_accepts
from tidings.kafka_local.processes import (
    is_owned_java,
    read_pid,
    terminate,
    write_pid,
)
from tidings.kafka_local.security import (
    ADMIN_PROPERTIES,
    ADMIN_USER,
    CONTROLLER_USER,
    CREDENTIALS_FILE,
    TLS_DIR,
    ClusterSecurity,
    Credentials,
    ensure_users,
    load_security,
    new_password,
    save_security,
    write_tls_material,
)
from tidings.kafka_local.server_config import render_server_properties
from tidings.kafka_local.state_files import read_json_record, tail, write_atomic

CLUSTER_FILE = "cluster.json"
CLUSTER_ID_FILE = "cluster.id"
LOG_CONFIG_FILE = "log4j2.properties"
_FORMAT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class NodeStatus:
    """What one node of a local cluster is doing."""

    node_id: int
    pid: int | None
    alive: bool
    client_port: int
    log_path: Path


@dataclass(frozen=True)
class ClusterStatus:
    """Snapshot of a local cluster's nodes."""

    state_dir: Path
    bootstrap: str
    nodes: tuple[NodeStatus, ...]

    @property
    def running(self) -> bool:
        """True when at least one node's JVM is alive."""
        return any(node.alive for node in self.nodes)

    @property
    def complete(self) -> bool:
        """True when every node's JVM is alive."""
        return bool(self.nodes) and all(node.alive for node in self.nodes)


def default_state_dir() -> Path:
    """``${TIDINGS_STATE_DIR:-<cwd>/.tidings}/dev``."""
    root = os.environ.get("TIDINGS_STATE_DIR")
    base = Path(root).expanduser() if root else Path.cwd() / ".tidings"
    return base / "dev"


def generate_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (22 chars)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        # Kafka's own generator rejects a leading '-' because CLIs read it as an option.
        if not text.startswith("-"):
            return text


def read_cluster_record(state_dir: Path) -> dict[str, Any] | None:
    """The ``cluster.json`` written by the last ``up`` in ``state_dir``, if any."""
    return read_json_record(state_dir / CLUSTER_FILE)




def _registered_brokers(config: Mapping[str, Any], timeout: float) -> int:
    """How many brokers the cluster reports in its metadata (0 if it does not answer)."""
    from confluent_kafka import KafkaException

    from tidings.kafka_clients import admin_client

    # While brokers boot, librdkafka reports every refused connection; the shared
    # client logger keeps those expected failures out of the user's terminal.
    admin = admin_client({**config, "socket.connection.setup.timeout.ms": 2000})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return 0
    return len(metadata.brokers)


@dataclass
class LocalCluster:
    """A local Kafka cluster rooted at ``state_dir``.

    ``brokers`` is 1 or 3; node ``i`` takes client port ``base_port + 2*(i-1)``
    and controller port one above it. Data persists across ``down``/``up``.
    ``secure`` runs SASL/SCRAM listeners with ACLs enforced (``tls`` adds TLS); see
    :mod:`tidings.kafka_local.security`. ``overrides`` are broker settings on top of
    the launcher's own (a failover test's timeouts, say).
    """

    state_dir: Path = field(default_factory=default_state_dir)
    brokers: int = 1
    base_port: int = DEFAULT_BASE_PORT
    secure: bool = False
    tls: bool = False
    overrides: Mapping[str, object] = field(default_factory=dict)
    _procs: dict[int, subprocess.Popen[bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Absolute, because the config path inside each JVM's argv identifies it.
        self.state_dir = Path(self.state_dir).expanduser().resolve()
        self._nodes = node_layouts(self.state_dir, self.brokers, self.base_port)
        if self.tls:
            self.secure = True  # TLS here is always SASL_SSL
        #: The credentials of a secure cluster, once ``up`` made or loaded them.
        self.security: ClusterSecurity | None = (
            load_security(self.state_dir) if self.secure else None)

    @classmethod
    def from_state_dir(cls, state_dir: Path | None = None) -> LocalCluster | None:
        """The cluster last brought up in ``state_dir`` (default state dir if None)."""
        root = Path(state_dir) if state_dir is not None else default_state_dir()
        record = read_cluster_record(root.expanduser().resolve())
        if record is None:
            return None
        try:
            return cls(root, brokers=int(record["brokers"]), base_port=int(record["base_port"]),
                       secure=bool(record.get("secure", False)),
                       tls=bool(record.get("tls", False)),
                       overrides=dict(record.get("overrides") or {}))
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def nodes(self) -> list[NodeLayout]:
        """Ports and paths of each node."""
        return list(self._nodes)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:p1,...`` for clients."""
        return bootstrap_for(self._nodes)

    def admin_config(self) -> dict[str, Any]:
        """librdkafka settings that reach this cluster as its admin (a super-user on a
        secure cluster)."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.security is not None:
            config.update(self.security.client_properties())
        return config

    # ------------------------------------------------------------------ status

    def _live_pid(self, node: NodeLayout) -> int | None:
        pid = read_pid(node.pid_path)
        if pid is not None and is_owned_java(pid, str(node.config_path)):
            return pid
        return None

    def status(self) -> ClusterStatus:
        """Which nodes run (by pid file, verified against the process table)."""
        statuses = []
        for node in self._nodes:
            pid = read_pid(node.pid_path)
            alive = pid is not None and is_owned_java(pid, str(node.config_path))
            statuses.append(
                NodeStatus(
                    node_id=node.node_id,
                    pid=pid,
                    alive=alive,
                    client_port=node.client_port,
                    log_path=node.log_path,
                )
            )
        return ClusterStatus(
            state_dir=self.state_dir, bootstrap=self.bootstrap, nodes=tuple(statuses)
        )

    # ---------------------------------------------------------------------- up

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `up`s on one state dir (two shells, two pytest workers) would format
        # and start the same nodes twice; serialise them.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def up(self, fresh: bool = False, timeout: float = 60) -> str:
        """Start the nodes that are not running and wait until all brokers answer.

        ``fresh`` stops the cluster and deletes its data first. Returns the
        bootstrap servers. Idempotent: a running cluster is left as it is.
        Raises :class:`TidingsError` (ports taken, no Java, download failed,
        a node died or did not become ready within ``timeout`` seconds).
        """
        with self._locked():
            self._check_compatible(fresh)
            if fresh:
                self._stop_all(timeout=20)
                self._wipe()
            self._prepare_security()
            to_start = [node for node in self._nodes if self._live_pid(node) is None]
            for node in to_start:
                node.pid_path.unlink(missing_ok=True)  # stale: its process is gone
            if to_start:
                self._start(to_start, timeout)
            else:
                self._wait_ready({}, time.monotonic() + timeout)
            return self.bootstrap

    def _check_compatible(self, fresh: bool) -> None:
        record = read_cluster_record(self.state_dir)
        if record is None:
            return
        recorded = LocalCluster.from_state_dir(self.state_dir)
        same = record.get("brokers") == self.brokers and record.get("base_port") == self.base_port
        if recorded is not None and not same and recorded.status().running:
            raise TidingsError(
                f"a {recorded.brokers}-broker Kafka is already running from {self.state_dir} "
                f"at {recorded.bootstrap}; run `tidings dev down` first"
            )
        formatted = any(self.state_dir.glob("node*/data/meta.properties"))
        if formatted and record.get("brokers") != self.brokers and not fresh:
            raise TidingsError(
                f"{self.state_dir} holds a {record.get('brokers')}-broker cluster's data; "
                f"use `tidings dev up --fresh --brokers {self.brokers}` to replace it "
                "(deletes its topics)"
            )
        was_secure = bool(record.get("secure", False))
        if recorded is not None and was_secure != self.secure and recorded.status().running:
            raise TidingsError(
                f"a {'secure' if was_secure else 'plaintext'} Kafka is already running from "
                f"{self.state_dir}; run `tidings dev down` first")
        if formatted and was_secure != self.secure and not fresh:
            # The admin's SCRAM credential can only be written when storage is formatted.
            flag = "--secure" if self.secure else "--no-secure"
            raise TidingsError(
                f"{self.state_dir} holds a {'secure' if was_secure else 'plaintext'} "
                f"cluster's data; use `tidings dev up --fresh {flag}` to replace it "
                "(deletes its topics)")

    def _prepare_security(self) -> None:
        """Load or create the secure cluster's credentials (and TLS files) before a start."""
        if not self.secure:
            self.security = None
            return
        security = load_security(self.state_dir)
        formatted = any(self.state_dir.glob("node*/data/meta.properties"))
        if security is None and formatted:
            raise TidingsError(
                f"{self.state_dir / CREDENTIALS_FILE} is missing, so the admin of this "
                "secure cluster cannot log in; use `tidings dev up --fresh --secure` "
                "(deletes its topics)")
        if security is None:
            security = ClusterSecurity.generate(self.state_dir, self.tls)
        elif security.tls != self.tls or (self.tls and not (
                security.ca_path and security.ca_path.exists())):
            # TLS is a listener setting: switching it keeps the users and their passwords.
            ca = write_tls_material(self.state_dir / TLS_DIR) if self.tls else None
            security = replace(security, tls=self.tls, ca_path=ca)
        save_security(self.state_dir, security)
        self.security = security

    def _wipe(self) -> None:
        for home in self.state_dir.glob("node*"):
            if home.is_dir():
                shutil.rmtree(home)
        (self.state_dir / CLUSTER_ID_FILE).unlink(missing_ok=True)
        # New data, new admin: the old credentials would no longer log in.
        (self.state_dir / CREDENTIALS_FILE).unlink(missing_ok=True)
        (self.state_dir / ADMIN_PROPERTIES).unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / TLS_DIR, ignore_errors=True)
        self.security = None

    def _cluster_id(self) -> str:
        path = self.state_dir / CLUSTER_ID_FILE
        with contextlib.suppress(OSError):
            existing = path.read_text(encoding="ascii").strip()
            if existing:
                return existing
        # cluster.id lost but data kept: reuse the id the data was formatted with.
        for meta in sorted(self.state_dir.glob("node*/data/meta.properties")):
            for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("cluster.id="):
                    cluster_id = line.split("=", 1)[1].strip()
                    write_atomic(path, cluster_id + "\n")
                    return cluster_id
        cluster_id = generate_cluster_id()
        write_atomic(path, cluster_id + "\n")
        return cluster_id

    def _prepare_files(self) -> Path:
        log_config = self.state_dir / LOG_CONFIG_FILE
        packaged = resources.files(__package__).joinpath(LOG_CONFIG_FILE)
        write_atomic(log_config, packaged.read_text(encoding="utf-8"))
        for node in self._nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(node.config_path, render_server_properties(
                node, self._nodes, self.security, self.overrides))
            if self.security is not None:
                node.config_path.chmod(0o600)  # it holds the brokers' own passwords
        return log_config

    def _format(self, java: Path, libs: Path, nodes: list[NodeLayout]) -> None:
        """Run ``StorageTool format`` for nodes whose data dir was never formatted."""
        cluster_id = self._cluster_id()
        pending = [node for node in nodes if not node.meta_properties.exists()]
        scram = (["--add-scram", self.security.scram_format_argument()]
                 if self.security is not None else [])
        procs = [
            (
                node,
                subprocess.Popen(
                    [
                        str(java),
                        "-Xmx256m",
                        "-cp",
                        f"{libs}/*",
                        "kafka.tools.StorageTool",
                        "format",
                        "-t",
                        cluster_id,
                        "-c",
                        str(node.config_path),
                        *scram,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                ),
            )
            for node in pending
        ]
        failures = []
        for node, proc in procs:
            try:
                out, _ = proc.communicate(timeout=_FORMAT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            if proc.returncode != 0:
                lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
                failures.append(f"node {node.node_id}: {' | '.join(lines[-3:]) or 'no output'}")
        if failures:
            raise TidingsError("formatting Kafka storage failed: " + "; ".join(failures))

    def _jvm_command(self, java: Path, libs: Path, log_config: Path, node: NodeLayout) -> list[str]:
        heap = "512m" if self.brokers == 1 else "384m"
        return [
            str(java),
            "-Xms256m",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            # C1 only: halves startup (3 nodes on 2 CPUs: 13 s -> 7 s); peak
            # throughput does not matter for a dev/test broker.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            f"-Dkafka.logs.dir={node.home}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(node.config_path),
        ]

    def _start(self, to_start: list[NodeLayout], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ensure_ports_free(p for node in to_start for p in (node.client_port, node.controller_port))
        java = find_java().path
        libs = ensure_kafka_libs()
        log_config = self._prepare_files()
        self._format(java, libs, to_start)
        started: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for node in to_start:
                with node.console_path.open("wb") as console:
                    proc = subprocess.Popen(
                        self._jvm_command(java, libs, log_config, node),
                        stdin=subprocess.DEVNULL,
                        stdout=console,
                        stderr=subprocess.STDOUT,
                        cwd=node.home,
                        # Own session: Ctrl-C in the terminal that ran `up` must not
                        # reach the broker; only `down` stops it.
                        start_new_session=True,
                    )
                started[node.node_id] = proc
                self._procs[node.node_id] = proc
                write_pid(node.pid_path, proc.pid)
            self._write_record()
            self._wait_ready(started, deadline)
        except BaseException:
            self._stop_nodes([n for n in to_start if n.node_id in started], timeout=10)
            raise

    def _write_record(self) -> None:
        record = {
            "brokers": self.brokers,
            "base_port": self.base_port,
            "bootstrap": self.bootstrap,
            "secure": self.secure,
            "tls": self.tls,
            "overrides": dict(self.overrides),
            "kafka_version": KAFKA_VERSION,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "client_port": n.client_port,
                    "controller_port": n.controller_port,
                }
                for n in self._nodes
            ],
        }
        write_atomic(self.state_dir / CLUSTER_FILE, json.dumps(record, indent=2) + "\n")

    def _wait_ready(self, started: dict[int, subprocess.Popen[bytes]], deadline: float) -> None:
        """Block until every broker is registered; raise with the log tail otherwise."""
        by_id = {node.node_id: node for node in self._nodes}
        while True:
            for node_id, proc in started.items():
                code = proc.poll()
                if code is not None:
                    raise self._startup_error(by_id[node_id], f"exited with code {code}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waiting = next(
                    (n for n in self._nodes if not port_accepts(n.client_port)), self._nodes[0]
                )
                raise self._startup_error(waiting, "did not become ready in time")
            if all(port_accepts(n.client_port) for n in self._nodes):
                seen = _registered_brokers(self.admin_config(), timeout=min(2.0, remaining))
                if seen >= self.brokers:
                    return
            time.sleep(0.2)

    def _startup_error(self, node: NodeLayout, what: str) -> TidingsError:
        source = node.console_path if tail(node.console_path) else node.log_path
        lines = tail(source) or ["(log is empty)"]
        body = "\n".join(f"  {line[:300]}" for line in lines)
        return TidingsError(
            f"local Kafka node {node.node_id} (port {node.client_port}) {what}; "
            f"last lines of {source}:\n{body}\nfull log: {node.log_path}"
        )

    # -------------------------------------------------------------------- down

    def _stop_nodes(self, nodes: list[NodeLayout], timeout: float) -> None:
        owned = []
        for node in nodes:
            pid = read_pid(node.pid_path)
            proc = self._procs.get(node.node_id)
            if pid is None and proc is not None:
                pid = proc.pid
            if pid is not None:
                owned.append((pid, str(node.config_path)))
        terminate(owned, timeout)
        for node in nodes:
            proc = self._procs.pop(node.node_id, None)
            if proc is not None:
                proc.poll()  # collect the exit status so no zombie remains
            node.pid_path.unlink(missing_ok=True)

    def _stop_all(self, timeout: float) -> None:
        # Stop whatever this state dir's pid files name, whatever self.brokers
        # says: the running cluster may have been started with other settings.
        nodes: dict[int, NodeLayout] = {n.node_id: n for n in self._nodes}
        for pid_file in self.state_dir.glob("node*.pid"):
            digits = pid_file.stem.removeprefix("node")
            if digits.isdigit() and int(digits) not in nodes:
                nodes[int(digits)] = NodeLayout(int(digits), 0, 0, self.state_dir)
        self._stop_nodes(list(nodes.values()), timeout)

    def down(self, timeout: float = 20) -> None:
        """Stop every node of this state dir: SIGTERM, then SIGKILL after ``timeout``.

        Only processes whose command line names this state dir's config files
        are signalled. Safe to call when nothing runs.
        """
        if not self.state_dir.is_dir():
            return
        with self._locked():
            self._stop_all(timeout)

    def stop_node(self, node_id: int, timeout: float = 20) -> None:
        """Stop one node (for failover tests); ``up`` starts it again."""
        node = next((n for n in self._nodes if n.node_id == node_id), None)
        if node is None:
            raise ValueError(f"no node {node_id} in a {self.brokers}-broker cluster")
        with self._locked():
            self._stop_nodes([node], timeout)

    def add_users(self, usernames: list[str], timeout: float = 30.0) -> ClusterSecurity:
        """Make sure a SCRAM user exists for each of ``usernames`` on this running secure
        cluster: new ones get a random password, known ones keep theirs (and are asserted
        again, harmlessly). Returns the credentials, saved in ``credentials.json``."""
        if self.security is None:
            raise TidingsError(f"the cluster in {self.state_dir} is not secure; users and "
                               "passwords need `tidings dev up --secure`")
        security = self.security
        fresh = {name: Credentials(name, new_password()) for name in usernames
                 if name not in security.users and name not in (ADMIN_USER, CONTROLLER_USER)}
        security = security.with_users(fresh)
        wanted = [security.user(name) for name in dict.fromkeys(usernames)
                  if name not in (ADMIN_USER, CONTROLLER_USER)]
        # Saved first: a user created on the cluster must never lack its password here.
        save_security(self.state_dir, security)
        self.security = security
        ensure_users(self.admin_config(), wanted, timeout=timeout)
        return security

    def kill_node(self, node_id: int) -> int:
        """``kill -9`` one node's JVM (by its pid, checked to be this node's) and wait
        until it is gone; returns the pid. ``up`` starts it again."""
        node = next((n for n in self._nodes if n.node_id == node_id), None)
        if node is None:
            raise ValueError(f"no node {node_id} in a {self.brokers}-broker cluster")
        with self._locked():
            pid = self._live_pid(node)
            if pid is None:
                raise TidingsError(f"node {node_id} of {self.state_dir} is not running")
            os.kill(pid, signal.SIGKILL)
            proc = self._procs.pop(node_id, None)
            deadline = time.monotonic() + 30
            while is_owned_java(pid, str(node.config_path)) and time.monotonic() < deadline:
                if proc is not None:
                    proc.poll()  # our child: collect it, or it stays a zombie
                time.sleep(0.05)
            if proc is not None:
                proc.wait(timeout=5)
            node.pid_path.unlink(missing_ok=True)
            return pid


def _running_at(state_dir: Path) -> str | None:
    cluster = LocalCluster.from_state_dir(state_dir)
    if cluster is None or not cluster.status().complete:
        return None
    if not any(port_accepts(node.client_port) for node in cluster.nodes):
        return None
    return cluster.bootstrap


def current_pointer() -> Path:
    """The per-user file naming the state dir of the last ``tidings dev up``:
    ``${XDG_STATE_HOME:-~/.local/state}/tidings/dev-cluster``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tidings" / "dev-cluster"


def remember_dev_cluster(state_dir: Path) -> None:
    """Record ``state_dir`` as the user's current dev cluster (``tidings dev up``), so
    every command finds it from any working directory."""
    pointer = current_pointer()
    pointer.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(pointer, str(state_dir.resolve()) + "\n")


def forget_dev_cluster(state_dir: Path) -> None:
    """Drop the pointer if it names ``state_dir`` (``tidings dev down``)."""
    pointer = current_pointer()
    with contextlib.suppress(OSError):
        if Path(pointer.read_text(encoding="utf-8").strip()) == state_dir.resolve():
            pointer.unlink()


def candidate_state_dirs(near: Path | None = None) -> list[Path]:
    """Where a dev cluster may live, most specific first: ``$TIDINGS_STATE_DIR``;
    ``.tidings/dev`` in ``near`` (a topology file's folder) or the working directory,
    or any folder above them; the user's current dev cluster (see
    :func:`current_pointer`)."""
    if os.environ.get("TIDINGS_STATE_DIR"):
        return [default_state_dir()]
    found: list[Path] = []
    for start in ([near] if near else []) + [Path.cwd()]:
        for folder in [start.resolve(), *start.resolve().parents]:
            candidate = folder / ".tidings" / "dev"
            if candidate not in found and (candidate / CLUSTER_FILE).exists():
                found.append(candidate)
    with contextlib.suppress(OSError):
        pointed = Path(current_pointer().read_text(encoding="utf-8").strip())
        if pointed not in found:
            found.append(pointed)
    return found


def running_bootstrap(state_dir: Path | None = None, *, near: Path | None = None) -> str | None:
    """Bootstrap servers of a running dev cluster, else None.

    With ``state_dir``, only that one; otherwise the first running one of
    :func:`candidate_state_dirs`. "Running" means every node's JVM is alive and a
    client port accepts connections.
    """
    if state_dir is not None:
        return _running_at(state_dir)
    for candidate in candidate_state_dirs(near):
        bootstrap = _running_at(candidate)
        if bootstrap is not None:
            return bootstrap
    return None

"""Pure logic of the local Kafka launcher: no JVM is started here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.errors import TidingsError
from tidings.kafka_local import LocalCluster, artifacts, running_bootstrap
from tidings.kafka_local.cluster import generate_cluster_id
from tidings.kafka_local.java import find_java, parse_java_version
from tidings.kafka_local.layout import node_layouts, ports_for
from tidings.kafka_local.ports import ensure_ports_free, find_free_base_port
from tidings.kafka_local.processes import is_owned_java, read_pid, write_pid
from tidings.kafka_local.server_config import render_server_properties


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


# --------------------------------------------------------------- server.properties


def test_single_node_properties(tmp_path: Path) -> None:
    (node,) = node_layouts(tmp_path, 1, 19092)
    props = _props(render_server_properties(node, [node]))
    assert props["node.id"] == "1"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "node1" / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_three_node_properties(tmp_path: Path) -> None:
    nodes = node_layouts(tmp_path, 3, 19092)
    rendered = [_props(render_server_properties(node, nodes)) for node in nodes]
    voters = "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert [p["node.id"] for p in rendered] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in rendered} == {voters}
    assert [p["advertised.listeners"] for p in rendered] == [
        "PLAINTEXT://127.0.0.1:19092",
        "PLAINTEXT://127.0.0.1:19094",
        "PLAINTEXT://127.0.0.1:19096",
    ]
    assert len({p["log.dirs"] for p in rendered}) == 3
    for props in rendered:
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"


def test_port_scheme_and_bootstrap(tmp_path: Path) -> None:
    assert ports_for(1, 19092) == [19092, 19093]
    assert ports_for(3, 20000) == list(range(20000, 20006))
    cluster = LocalCluster(tmp_path, brokers=3, base_port=20000)
    assert cluster.bootstrap == "127.0.0.1:20000,127.0.0.1:20002,127.0.0.1:20004"


@pytest.mark.parametrize("brokers", [0, 2, 4])
def test_unsupported_broker_counts(tmp_path: Path, brokers: int) -> None:
    with pytest.raises(ValueError):
        LocalCluster(tmp_path, brokers=brokers)


def test_cluster_id_is_kafka_shaped() -> None:
    ids = {generate_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


# --------------------------------------------------------------------------- java

JAVA_OUTPUTS = {
    17: 'openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6)',
    21: 'openjdk version "21" 2023-09-19\nOpenJDK Runtime Environment (build 21+35-2513)',
    11: 'openjdk version "11.0.22" 2024-01-16 LTS\nOpenJDK 64-Bit Server VM',
    8: 'java version "1.8.0_392"\nJava(TM) SE Runtime Environment (build 1.8.0_392-b08)',
    22: 'openjdk version "22-ea" 2024-03-19\nOpenJDK Runtime Environment (build 22-ea+27)',
}


@pytest.mark.parametrize(("expected", "output"), sorted(JAVA_OUTPUTS.items()))
def test_parse_java_version(expected: int, output: str) -> None:
    assert parse_java_version(output) == expected


def test_parse_java_version_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_java_version("bash: java: command not found")


def _fake_java(directory: Path, version_output: str) -> Path:
    java = directory / "bin" / "java"
    java.parent.mkdir(parents=True)
    # printf is a shell builtin: the script works even with an empty PATH.
    java.write_text(f"#!/bin/sh\nprintf '%s\\n' '{version_output}' >&2\n")
    java.chmod(0o755)
    return java


def test_find_java_rejects_old_java_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = _fake_java(tmp_path, JAVA_OUTPUTS[11])
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(TidingsError) as err:
        find_java()
    message = str(err.value)
    assert "\n" not in message
    assert "Java 17+ is required" in message
    assert f"{java} is Java 11" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_find_java_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TidingsError, match=r"^Java 17\+ is required .*openjdk-17"):
        find_java()


def test_find_java_prefers_java_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = _fake_java(tmp_path, JAVA_OUTPUTS[21])
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    found = find_java()
    assert (found.path, found.major) == (java, 21)


# -------------------------------------------------------------------------- ports


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_taken_port_is_a_one_line_error(listening_port: int) -> None:
    with pytest.raises(TidingsError) as err:
        ensure_ports_free([listening_port])
    assert str(err.value) == (
        f"port {listening_port} is already in use (another Kafka?); "
        "run `tidings dev down` or choose --port"
    )


def test_up_checks_ports_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("must not get this far")

    monkeypatch.setattr("tidings.kafka_local.cluster.ensure_kafka_libs", fail)
    monkeypatch.setattr("tidings.kafka_local.cluster.find_java", fail)
    monkeypatch.setattr("subprocess.Popen", fail)
    # The taken port is node 2's client port of a 3-node cluster (the ports before it
    # are free, so it is the first one the check finds taken).
    base = find_free_base_port(6)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", base + 2))
        taken.listen()
        cluster = LocalCluster(tmp_path / "state", brokers=3, base_port=base)
        with pytest.raises(TidingsError, match=f"port {base + 2} is already in use"):
            cluster.up()
    assert not list((tmp_path / "state").glob("node*.pid"))


def test_find_free_base_port() -> None:
    base = find_free_base_port(6)
    assert base != 19092
    ensure_ports_free(range(base, base + 6))


# ---------------------------------------------------------------------- pid files


def test_read_pid_tolerates_garbage(tmp_path: Path) -> None:
    path = tmp_path / "node1.pid"
    assert read_pid(path) is None
    path.write_text("not a pid\n")
    assert read_pid(path) is None
    write_pid(path, 4242)
    assert read_pid(path) == 4242


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_pid_files_are_not_running_and_down_cleans_them(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, brokers=3, base_port=find_free_base_port(6))
    node1, node2, node3 = cluster.nodes
    write_pid(node1.pid_path, _dead_pid())
    # A live process that is not our broker (pid reuse): this very test process.
    write_pid(node2.pid_path, os.getpid())
    node3.pid_path.write_text("garbage")

    status = cluster.status()
    assert not status.running
    assert [n.alive for n in status.nodes] == [False, False, False]
    assert not is_owned_java(os.getpid(), str(node2.config_path))

    cluster.down(timeout=1)  # must not signal this process
    assert not list(tmp_path.glob("node*.pid"))
    cluster.down(timeout=1)  # and twice is harmless


def test_nothing_running_anywhere(tmp_path: Path) -> None:
    assert running_bootstrap(tmp_path / "never-used") is None
    LocalCluster(tmp_path / "never-used").down()
    assert not (tmp_path / "never-used").exists()


def test_running_bootstrap_ignores_stale_cluster(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text('{"brokers": 1, "base_port": 23000}')
    write_pid(tmp_path / "node1.pid", _dead_pid())
    assert running_bootstrap(tmp_path) is None


# ----------------------------------------------------------------------- download


def test_cache_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert artifacts.libs_dir("9.9") == tmp_path / "xdg" / "tidings" / "kafka" / "9.9" / "libs"
    monkeypatch.setenv("TIDINGS_CACHE_DIR", str(tmp_path / "own"))
    assert artifacts.cache_dir() == tmp_path / "own"


def test_missing_mvn_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(TidingsError, match=r"Maven \(mvn\) is needed") as err:
        artifacts.ensure_kafka_libs("9.9.9")
    assert "\n" not in str(err.value)


def test_failed_download_retries_then_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    mvn = bin_dir / "mvn"
    mvn.write_text(
        f"#!/bin/sh\necho run >> {calls}\n"
        "echo '[ERROR] Could not transfer artifact: Connection refused'\nexit 1\n"
    )
    mvn.chmod(0o755)
    monkeypatch.setenv("TIDINGS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(artifacts.time, "sleep", lambda _s: None)
    with pytest.raises(TidingsError) as err:
        artifacts.ensure_kafka_libs("9.9.9")
    message = str(err.value)
    assert "\n" not in message
    assert "Maven Central" in message and "KAFKA_BOOTSTRAP_SERVERS" in message
    assert "Connection refused" in message
    assert calls.read_text().count("run") == artifacts.ATTEMPTS
    version_dir = tmp_path / "cache" / "kafka" / "9.9.9"
    assert not (version_dir / "libs").exists()
    assert [p.name for p in version_dir.iterdir()] == [".lock"]  # temp dirs cleaned up


def test_successful_download_is_atomic_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    mvn = bin_dir / "mvn"
    # Fake mvn: writes a jar into -DoutputDirectory=...
    mvn.write_text(
        f"#!/bin/sh\necho run >> {calls}\n"
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#*=}";; esac; done\n'
        'mkdir -p "$out" && touch "$out/kafka_2.13-9.9.9.jar"\n'
    )
    mvn.chmod(0o755)
    monkeypatch.setenv("TIDINGS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    libs = artifacts.ensure_kafka_libs("9.9.9")
    assert (libs / "kafka_2.13-9.9.9.jar").exists()
    assert artifacts.is_complete(libs)
    assert artifacts.ensure_kafka_libs("9.9.9") == libs
    assert calls.read_text().count("run") == 1


def test_secure_node_properties(tmp_path: Path) -> None:
    from tidings.kafka_local.security import ClusterSecurity

    security = ClusterSecurity.generate(tmp_path, tls=True)
    nodes = node_layouts(tmp_path, 3, 19092)
    props = _props(render_server_properties(nodes[1], nodes, security))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19094"
    assert props["listener.security.protocol.map"] == \
        "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["authorizer.class.name"] == \
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    assert props["ssl.keystore.type"] == "PEM"
    assert Path(props["ssl.keystore.location"]).stat().st_mode & 0o077 == 0
    assert security.admin.password in props[
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    env = security.environment("127.0.0.1:19092")
    assert env == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
        "TIDINGS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TIDINGS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TIDINGS_KAFKA_SASL_USERNAME": "admin",
        "TIDINGS_KAFKA_SASL_PASSWORD": security.admin.password,
        "TIDINGS_KAFKA_SSL_CA_LOCATION": str(tmp_path / "tls" / "ca.pem"),
    }
    # tidings.settings reads the variables back as the librdkafka properties they name.
    from tidings.settings import kafka_properties_from_env

    assert kafka_properties_from_env(env) == security.client_properties()


def test_credentials_file_round_trips_and_is_private(tmp_path: Path) -> None:
    from tidings.kafka_local.security import (
        ClusterSecurity,
        Credentials,
        load_security,
        save_security,
    )

    security = ClusterSecurity.generate(tmp_path, tls=False).with_users(
        {"inventory": Credentials("inventory", "s3cret")})
    path = save_security(tmp_path, security)
    assert path.stat().st_mode & 0o077 == 0
    assert load_security(tmp_path) == security
    assert "s3cret" not in repr(security)  # passwords never end up in a repr or a log line
    assert load_security(tmp_path / "elsewhere") is None

"""The local schema registry and Kafka tools around the launcher: pure logic, fake mvn and
fake JVMs (the real ones run in tests/integration/test_kafka_tools.py)."""

from __future__ import annotations

import io
import os
import socket
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.errors import TidingsError
from tidings.kafka_local import artifacts, java, tools
from tidings.kafka_local.java import JavaRuntime, installed_javas, newest_java
from tidings.kafka_local.processes import write_pid
from tidings.kafka_local.registry import (
    LocalRegistry,
    RegistryNotInstallable,
    RegistryRuntime,
    choose_runtime,
)


def runtime(major: int, name: str = "jdk") -> JavaRuntime:
    return JavaRuntime(Path(f"/jvm/{name}-{major}/bin/java"), major)


def test_the_newest_java_picks_the_release() -> None:
    assert choose_runtime([runtime(17), runtime(25)]) == RegistryRuntime("3.3.3", runtime(25))
    assert choose_runtime([runtime(21)]).version == "3.3.3"
    assert choose_runtime([runtime(17, "a"), runtime(17, "b")]) == \
        RegistryRuntime("3.0.9", runtime(17, "a"))
    with pytest.raises(RegistryNotInstallable) as err:
        choose_runtime([runtime(11)])
    assert str(err.value).startswith("the local schema registry needs Java 17+ (21+ for "
                                     "Apicurio 3.3.3), but the newest Java found is 11")
    with pytest.raises(RegistryNotInstallable, match="no Java was found"):
        choose_runtime([])
    assert newest_java([]) is None


def _fake_jvm(root: Path, name: str, version: str) -> Path:
    path = root / name / "bin" / "java"
    path.parent.mkdir(parents=True)
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' 'openjdk version \"{version}\" 2025-01-01' >&2\n")
    path.chmod(0o755)
    return path


def test_installed_javas_look_beyond_java_home_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jvms = tmp_path / "jvm"
    old = _fake_jvm(jvms, "java-17-openjdk", "17.0.15")
    new = _fake_jvm(jvms, "temurin-25-jdk", "25.0.1")
    _fake_jvm(jvms, "broken", "not a version")
    monkeypatch.setattr(java, "JVM_ROOTS", (jvms, tmp_path / "missing"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert installed_javas() == [JavaRuntime(old, 17), JavaRuntime(new, 25)]
    # $JAVA_HOME comes first and is not listed twice.
    monkeypatch.setenv("JAVA_HOME", str(jvms / "temurin-25-jdk"))
    assert installed_javas() == [JavaRuntime(new, 25), JavaRuntime(old, 17)]
    assert choose_runtime() == RegistryRuntime("3.3.3", JavaRuntime(new, 25))


# ----------------------------------------------------------------------- download


def _fake_mvn(tmp_path: Path, archive_members: dict[str, bytes]) -> Path:
    """An mvn that 'downloads' a tar.gz holding ``archive_members`` into -DoutputDirectory."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as archive:
        for name, data in archive_members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    blob = tmp_path / "blob.tar.gz"
    blob.write_bytes(payload.getvalue())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    mvn = bin_dir / "mvn"
    mvn.write_text(
        f"#!/bin/sh\necho \"$@\" >> {calls}\n"
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#*=}";; esac; done\n'
        f'mkdir -p "$out" && cp {blob} "$out/apicurio-registry-app-9.9-all.tar.gz"\n'
    )
    mvn.chmod(0o755)
    return calls


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIDINGS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(artifacts.time, "sleep", lambda _s: None)
    return tmp_path / "cache"


def test_apicurio_is_fetched_unpacked_and_cached(tmp_path: Path, cache: Path) -> None:
    # Some releases wrap their files in a directory: they are lifted out of it.
    calls = _fake_mvn(tmp_path, {"apicurio-9.9/quarkus-run.jar": b"jar",
                                 "apicurio-9.9/lib/main/a.jar": b"a"})
    app = artifacts.ensure_apicurio("9.9")
    assert app == cache / "apicurio" / "9.9" / "app"
    assert (app / "quarkus-run.jar").read_bytes() == b"jar"
    assert (app / "lib" / "main" / "a.jar").exists()
    assert artifacts.ensure_apicurio("9.9") == app
    (call,) = calls.read_text().splitlines()
    assert "dependency:copy" in call
    assert "-Dartifact=io.apicurio:apicurio-registry-app:9.9:tar.gz:all" in call
    # The downloaded archive is not kept next to the unpacked app.
    assert sorted(p.name for p in app.parent.iterdir()) == [".lock", "app"]


def test_a_legacy_jar_build_runs_from_its_runner_jar(tmp_path: Path, cache: Path) -> None:
    # Apicurio 3.0.x ships <name>-runner.jar beside lib/ instead of quarkus-run.jar.
    _fake_mvn(tmp_path, {"apicurio-registry-app-3.0.9-runner.jar": b"jar",
                         "lib/io.quarkus.quarkus-bootstrap-runner-3.15.4.jar": b"lib"})
    app = artifacts.ensure_apicurio("9.9")
    assert artifacts.runner_jar(app) == app / "apicurio-registry-app-3.0.9-runner.jar"
    command = LocalRegistry(tmp_path, port=23456).command(
        RegistryRuntime("3.0.9", runtime(17)), app)
    assert command[-2:] == ["-jar", str(app / "apicurio-registry-app-3.0.9-runner.jar")]


def test_an_archive_without_the_runner_is_a_failed_download(tmp_path: Path, cache: Path) -> None:
    calls = _fake_mvn(tmp_path, {"README": b"not a registry"})
    with pytest.raises(TidingsError) as err:
        artifacts.ensure_apicurio("9.9")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("could not download Apicurio Registry 9.9 from Maven Central "
                              "after 3 attempts (apicurio-registry-app-9.9-all.tar.gz holds no "
                              "quarkus-run.jar or *-runner.jar)")
    assert len(calls.read_text().splitlines()) == artifacts.ATTEMPTS
    assert not (cache / "apicurio" / "9.9" / "app").exists()


# ------------------------------------------------------------------------ registry


def test_a_stale_registry_pid_is_not_running_and_never_signalled(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path, port=23456)
    write_pid(registry.pid_path, os.getpid())  # alive, but not our registry
    assert registry.live_pid() is None
    assert not registry.status().alive
    registry.down(timeout=1)
    assert not registry.pid_path.exists()
    assert LocalRegistry.from_state_dir(tmp_path / "never") is None


def test_the_registry_command_is_loopback_in_memory_and_marked(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path, port=23456)
    command = registry.command(RegistryRuntime("3.3.3", runtime(25)), tmp_path / "app")
    assert command[0] == "/jvm/jdk-25/bin/java"
    assert command[1] == f"-Dtidings.registry.home={tmp_path / 'registry'}"
    for option in ("-Dquarkus.http.host=127.0.0.1", "-Dquarkus.http.port=23456",
                   "-Dquarkus.management.host=127.0.0.1", "-Dquarkus.management.port=23457",
                   "-Dapicurio.datasource.url=jdbc:h2:mem:registry"):
        assert option in command
    assert command[-2:] == ["-jar", str(tmp_path / "app" / "quarkus-run.jar")]
    assert registry.url == "http://127.0.0.1:23456/apis/ccompat/v7"


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_registry_port_is_one_line_before_anything_starts(
    tmp_path: Path, listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("must not get this far")

    monkeypatch.setattr(LocalRegistry, "prepare", fail)
    monkeypatch.setattr("subprocess.Popen", fail)
    with pytest.raises(TidingsError) as err:
        LocalRegistry(tmp_path, port=listening_port).up()
    assert str(err.value) == (f"port {listening_port} is already in use (another registry?); "
                              "run `tidings dev down` or choose --registry-port")


# --------------------------------------------------------------------------- tools


def test_tool_scripts_run_each_tool_from_its_classpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools, "ensure_kafka_tools", lambda: tmp_path / "tools dir")
    monkeypatch.setattr(tools, "ensure_kafka_libs", lambda: tmp_path / "libs")
    written = tools.write_tool_scripts(tmp_path / "bin", java=Path("/opt/jdk/bin/java"))
    assert [p.name for p in written] == list(tools.TOOLS)
    groups = (tmp_path / "bin" / "kafka-consumer-groups").read_text()
    assert groups.startswith("#!/bin/sh\n")
    assert 'exec "${JAVA:-/opt/jdk/bin/java}"' in groups
    assert f"-cp '{tmp_path / 'tools dir'}/*' " \
           "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \"$@\"" in groups
    configs = (tmp_path / "bin" / "kafka-configs").read_text()
    assert f"-cp '{tmp_path / 'libs'}/*' kafka.admin.ConfigCommand" in configs
    for script in written:
        assert script.stat().st_mode & stat.S_IXUSR
    assert (tmp_path / "bin" / tools.LOG_CONFIG).read_text().count("rootLogger.level = WARN")

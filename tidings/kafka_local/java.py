"""Locate Java runtimes: one able to run the Kafka broker (Java 17+), and the newest
installed one for the schema registry (Apicurio 3.3 needs Java 21+)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tidings.errors import TidingsError

MIN_JAVA_VERSION = 17

_MISSING = (
    "Java 17+ is required to run a local Kafka broker: install a JDK "
    "(e.g. apt-get install openjdk-17-jre-headless) or set KAFKA_BOOTSTRAP_SERVERS"
)
_VERSION_RE = re.compile(r'version "([^"]+)"')


@dataclass(frozen=True)
class JavaRuntime:
    """A ``java`` executable and its major version."""

    path: Path
    major: int


def parse_java_version(output: str) -> int:
    """Return the major version from ``java -version`` output.

    Handles both schemes: ``1.8.0_292`` (Java 8 and older) and ``17.0.15`` /
    ``21`` / ``22-ea`` (Java 9+). Raises ``ValueError`` when no version is found.
    """
    match = _VERSION_RE.search(output)
    if match is None:
        raise ValueError(f"no Java version in {output.strip()[:200]!r}")
    version = match.group(1)
    parts = re.split(r"[._+-]", version)
    try:
        first = int(parts[0])
        return int(parts[1]) if first == 1 and len(parts) > 1 else first
    except ValueError as exc:
        raise ValueError(f"unrecognised Java version {version!r}") from exc


def _candidates() -> list[Path]:
    found: list[Path] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        home_java = Path(java_home) / "bin" / "java"
        if home_java.is_file() and os.access(home_java, os.X_OK):
            found.append(home_java)
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path))
    return found


#: Where distributions install JVMs side by side (Debian/Ubuntu, RPM, tarballs, macOS).
JVM_ROOTS: tuple[Path, ...] = (
    Path("/usr/lib/jvm"),
    Path("/usr/java"),
    Path("/opt/java"),
    Path("/Library/Java/JavaVirtualMachines"),
)


def _version_of(java: Path) -> int | None:
    try:
        proc = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
        return parse_java_version(proc.stderr + proc.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def installed_javas() -> list[JavaRuntime]:
    """Every Java found: ``$JAVA_HOME``, ``java`` on PATH, then the JVMs under
    :data:`JVM_ROOTS`, in that order, each executable once."""
    paths = list(_candidates())
    for root in JVM_ROOTS:
        if not root.is_dir():
            continue
        for home in sorted(root.iterdir()):
            for java in (home / "bin" / "java", home / "Contents" / "Home" / "bin" / "java"):
                if java.is_file() and os.access(java, os.X_OK):
                    paths.append(java)
    found: list[JavaRuntime] = []
    seen: set[Path] = set()
    for path in paths:
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        major = _version_of(path)
        if major is not None:
            found.append(JavaRuntime(path=path, major=major))
    return found


def newest_java(javas: list[JavaRuntime] | None = None) -> JavaRuntime | None:
    """The installed Java with the highest major version (the first found on a tie,
    so ``$JAVA_HOME`` wins among equals), or None when there is none."""
    javas = installed_javas() if javas is None else javas
    best: JavaRuntime | None = None
    for java in javas:
        if best is None or java.major > best.major:
            best = java
    return best


def find_java() -> JavaRuntime:
    """Return the first Java 17+ runtime: ``$JAVA_HOME/bin/java``, then ``java`` on PATH.

    Raises :class:`TidingsError` (one line) when none exists or it is too old.
    """
    candidates = _candidates()
    if not candidates:
        raise TidingsError(_MISSING)
    too_old: tuple[Path, int] | None = None
    for java in candidates:
        major = _version_of(java)
        if major is None:
            continue
        if major >= MIN_JAVA_VERSION:
            return JavaRuntime(path=java, major=major)
        too_old = too_old or (java, major)
    if too_old is None:
        raise TidingsError(_MISSING)
    path, major = too_old
    raise TidingsError(
        f"Java 17+ is required to run a local Kafka broker but {path} is Java {major}: "
        "install a newer JDK (e.g. apt-get install openjdk-17-jre-headless), point JAVA_HOME "
        "at it, or set KAFKA_BOOTSTRAP_SERVERS"
    )

"""Fetch the Kafka broker's jars from Maven Central once and cache them.

The Apache release tarball is not reachable everywhere, Maven Central usually
is: ``pom.xml`` in this package lists ``kafka_2.13`` plus a log4j binding and
``mvn dependency:copy-dependencies`` resolves the whole runtime classpath.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from tidings.errors import TidingsError

KAFKA_VERSION = "4.1.2"
"""The Apache Kafka version the local launcher runs (the only place it is set)."""

ATTEMPTS = 3
_COMPLETE_MARKER = ".complete"
_MVN_TIMEOUT_S = 900.0


def cache_dir() -> Path:
    """``$TIDINGS_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/tidings``."""
    explicit = os.environ.get("TIDINGS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tidings"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of ``version`` live once downloaded (may not exist yet)."""
    return cache_dir() / "kafka" / version / "libs"


def is_complete(libs: Path) -> bool:
    """True when ``libs`` holds a finished download."""
    return (libs / _COMPLETE_MARKER).is_file()


def pom_text() -> str:
    """The packaged ``pom.xml`` listing the broker's dependencies."""
    return resources.files(__package__).joinpath("pom.xml").read_text(encoding="utf-8")


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    # A second pytest process must wait for the first download, not start its own
    # into the same directory; flock is released by the kernel even on a crash.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]") and len(line) > 8]
    picked = (errors or lines or ["no output"])[0 if errors else -1]
    return picked.removeprefix("[ERROR]").strip()[:300]


def _mvn_command(mvn: str, pom: Path, out: Path, version: str) -> list[str]:
    return [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        f"-Dkafka.version={version}",
        # Maven's own HTTP retries cover flaky single requests; our loop covers the rest.
        "-Dmaven.wagon.http.retryHandler.count=3",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
    ]


def _download_once(mvn: str, version_dir: Path, version: str) -> tuple[Path | None, str]:
    """One mvn run into a private temp dir; returns (libs dir or None, error text)."""
    work = Path(tempfile.mkdtemp(prefix=".download-", dir=version_dir))
    try:
        pom = work / "pom.xml"
        pom.write_text(pom_text(), encoding="utf-8")
        out = work / "libs"
        try:
            proc = subprocess.run(
                _mvn_command(mvn, pom, out, version),
                cwd=work,
                capture_output=True,
                text=True,
                timeout=_MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"mvn timed out after {_MVN_TIMEOUT_S:.0f}s"
        jars = list(out.glob("kafka_2.13-*.jar")) if out.is_dir() else []
        if proc.returncode != 0 or not jars:
            return None, _last_error_line(proc.stdout + "\n" + proc.stderr)
        (out / _COMPLETE_MARKER).write_text(version + "\n", encoding="utf-8")
        target = version_dir / "libs"
        if target.exists():  # an incomplete leftover from a crashed older version of this code
            shutil.rmtree(target)
        # rename is atomic: readers see either no libs dir or a complete one.
        out.rename(target)
        return target, ""
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """Return a directory of jars forming Kafka ``version``'s runtime classpath.

    Downloads with ``mvn`` on first use (3 attempts with backoff) into the cache;
    later calls, from any process, return the cached directory immediately.
    Raises :class:`TidingsError` when ``mvn`` is missing or every attempt fails.
    """
    libs = libs_dir(version)
    if is_complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TidingsError(
            f"Maven (mvn) is needed once to fetch the Kafka {version} jars into {libs.parent}: "
            "install it (e.g. apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS"
        )
    version_dir = libs.parent
    with _exclusive_lock(version_dir / ".lock"):
        if is_complete(libs):  # another process finished while we waited for the lock
            return libs
        error = ""
        for attempt in range(1, ATTEMPTS + 1):
            result, error = _download_once(mvn, version_dir, version)
            if result is not None:
                return result
            if attempt < ATTEMPTS:
                time.sleep(2.0 * 2 ** (attempt - 1))
    raise TidingsError(
        f"could not download the Kafka {version} jars from Maven Central after {ATTEMPTS} "
        f"attempts ({error}): check access to Maven Central (proxy/mirror in "
        "~/.m2/settings.xml) or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker"
    )

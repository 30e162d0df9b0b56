"""Fetch what the local launcher runs from Maven Central once, and cache it.

Three things come from Maven Central, because the Apache release tarball (and
Docker images) are not reachable everywhere, Maven Central usually is:

* the Kafka broker's jars: ``pom.xml`` in this package lists ``kafka_2.13`` plus
  a log4j binding, and ``mvn dependency:copy-dependencies`` resolves the whole
  runtime classpath;
* Kafka's own command-line tools (``kafka-tools``, same version, ``tools-pom.xml``);
* the Apicurio schema registry, a ready-to-run Quarkus build published as one
  ``tar.gz`` (``mvn dependency:copy``, then unpacked here; the tarball is not kept,
  though Maven keeps its own copy in ``~/.m2``).

Each goes through :func:`ensure_artifact`: a file lock so concurrent processes
share one download, a private temp dir per attempt, three attempts with backoff,
and an atomic rename, so a reader sees either nothing or a complete directory.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tidings.errors import TidingsError

KAFKA_VERSION = "4.1.2"
"""The Apache Kafka version the local launcher runs (the only place it is set)."""

APICURIO_COORDINATES = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
"""The Apicurio Registry build on Maven Central; ``{version}`` is filled in."""

ATTEMPTS = 3
_COMPLETE_MARKER = ".complete"
_MVN_TIMEOUT_S = 900.0
_KAFKA_HINT = " or set KAFKA_BOOTSTRAP_SERVERS to use an existing broker"


def cache_dir() -> Path:
    """``$TIDINGS_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/tidings``."""
    explicit = os.environ.get("TIDINGS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tidings"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the broker jars of ``version`` live once downloaded (may not exist yet)."""
    return cache_dir() / "kafka" / version / "libs"


def tools_dir(version: str = KAFKA_VERSION) -> Path:
    """Where Kafka's command-line tools of ``version`` live once downloaded."""
    return cache_dir() / "kafka" / version / "tools"


def apicurio_dir(version: str) -> Path:
    """Where Apicurio Registry ``version`` is unpacked (its runner jar inside)."""
    return cache_dir() / "apicurio" / version / "app"


def is_complete(target: Path) -> bool:
    """True when ``target`` holds a finished download."""
    return (target / _COMPLETE_MARKER).is_file()


def pom_text(name: str = "pom.xml") -> str:
    """A pom packaged with this module: ``pom.xml`` (broker) or ``tools-pom.xml``."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Artifact:
    """Something fetched with one ``mvn`` run into a cache directory."""

    #: For messages: "the Kafka 4.1.2 jars".
    what: str
    #: The finished directory (renamed into place when complete).
    target: Path
    #: ``mvn`` arguments, given the attempt's private work dir; output goes to ``work/out``.
    mvn_args: Callable[[Path], list[str]]
    #: Given the work dir, checks (or builds) ``work/out``; returns what is wrong, or "".
    finish: Callable[[Path], str]
    #: What else the user can do, appended to error messages (", or ...").
    hint: str = ""


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


def _mvn_base(mvn: str) -> list[str]:
    # Maven's own HTTP retries cover flaky single requests; our loop covers the rest.
    return [mvn, "-q", "-B", "-Dmaven.wagon.http.retryHandler.count=3"]


def _download_once(mvn: str, artifact: Artifact) -> tuple[Path | None, str]:
    """One mvn run into a private temp dir; returns (target or None, error text)."""
    parent = artifact.target.parent
    work = Path(tempfile.mkdtemp(prefix=".download-", dir=parent))
    try:
        try:
            proc = subprocess.run(
                [*_mvn_base(mvn), *artifact.mvn_args(work)],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=_MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"mvn timed out after {_MVN_TIMEOUT_S:.0f}s"
        if proc.returncode != 0:
            return None, _last_error_line(proc.stdout + "\n" + proc.stderr)
        problem = artifact.finish(work)
        out = work / "out"
        if problem or not out.is_dir():
            return None, problem or "mvn wrote nothing"
        (out / _COMPLETE_MARKER).write_text(artifact.what + "\n", encoding="utf-8")
        if artifact.target.exists():  # an incomplete leftover from a crashed older version
            shutil.rmtree(artifact.target)
        # rename is atomic: readers see either no target dir or a complete one.
        out.rename(artifact.target)
        return artifact.target, ""
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_artifact(artifact: Artifact) -> Path:
    """Return ``artifact.target``, downloading it with ``mvn`` on first use.

    Three attempts with backoff; later calls, from any process, return the cached
    directory immediately. Raises :class:`TidingsError` (one line) when ``mvn`` is
    missing or every attempt fails.
    """
    if is_complete(artifact.target):
        return artifact.target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TidingsError(
            f"Maven (mvn) is needed once to fetch {artifact.what} into "
            f"{artifact.target.parent}: install it (e.g. apt-get install maven){artifact.hint}"
        )
    with _exclusive_lock(artifact.target.parent / ".lock"):
        if is_complete(artifact.target):  # another process finished while we waited
            return artifact.target
        error = ""
        for attempt in range(1, ATTEMPTS + 1):
            result, error = _download_once(mvn, artifact)
            if result is not None:
                return result
            if attempt < ATTEMPTS:
                time.sleep(2.0 * 2 ** (attempt - 1))
    raise TidingsError(
        f"could not download {artifact.what} from Maven Central after {ATTEMPTS} "
        f"attempts ({error}): check access to Maven Central (proxy/mirror in "
        f"~/.m2/settings.xml){artifact.hint}"
    )


# --------------------------------------------------------------------- what we fetch


def _dependencies_of(pom_name: str, version: str) -> Callable[[Path], list[str]]:
    def args(work: Path) -> list[str]:
        pom = work / "pom.xml"
        pom.write_text(pom_text(pom_name), encoding="utf-8")
        return ["-f", str(pom), f"-Dkafka.version={version}",
                "dependency:copy-dependencies", f"-DoutputDirectory={work / 'out'}",
                "-DincludeScope=runtime"]

    return args


def _has_jar(pattern: str) -> Callable[[Path], str]:
    def check(work: Path) -> str:
        if any((work / "out").glob(pattern)):
            return ""
        return f"no {pattern} among the downloaded jars"

    return check


def kafka_libs_artifact(version: str = KAFKA_VERSION) -> Artifact:
    """The broker's runtime classpath."""
    return Artifact(f"the Kafka {version} jars", libs_dir(version),
                    _dependencies_of("pom.xml", version), _has_jar("kafka_2.13-*.jar"),
                    _KAFKA_HINT)


def kafka_tools_artifact(version: str = KAFKA_VERSION) -> Artifact:
    """``kafka-tools`` and its classpath: kafka-topics, kafka-consumer-groups, ..."""
    return Artifact(f"the Kafka {version} command-line tools", tools_dir(version),
                    _dependencies_of("tools-pom.xml", version), _has_jar("kafka-tools-*.jar"))


def apicurio_artifact(version: str) -> Artifact:
    """Apicurio Registry's Quarkus build, unpacked."""

    def args(work: Path) -> list[str]:
        return ["dependency:copy", f"-Dartifact={APICURIO_COORDINATES.format(version=version)}",
                f"-DoutputDirectory={work / 'download'}"]

    def unpack(work: Path) -> str:
        out = work / "out"
        archives = list((work / "download").glob("*.tar.gz"))
        if len(archives) != 1:
            return f"expected one tar.gz from mvn, found {len(archives)}"
        try:
            with tarfile.open(archives[0]) as archive:
                archive.extractall(out, filter="data")
        except (OSError, tarfile.TarError) as exc:
            return f"cannot unpack {archives[0].name}: {exc}"
        runners = [p for pattern in ("quarkus-run.jar", "*-runner.jar")
                   for p in out.glob(f"**/{pattern}")]
        runner = min(runners, key=lambda p: len(p.parts), default=None)
        if runner is None:
            return f"{archives[0].name} holds no quarkus-run.jar or *-runner.jar"
        if runner.parent != out:  # the archive wraps its files in a directory: lift them
            inner = runner.parent
            for item in inner.iterdir():
                item.rename(out / item.name)
        return ""

    return Artifact(f"Apicurio Registry {version}", apicurio_dir(version), args, unpack,
                    " or use an existing registry (TIDINGS_SCHEMA_REGISTRY_URL)")


def ensure_kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """Return a directory of jars forming Kafka ``version``'s runtime classpath.

    Downloads with ``mvn`` on first use (3 attempts with backoff) into the cache;
    later calls, from any process, return the cached directory immediately.
    Raises :class:`TidingsError` when ``mvn`` is missing or every attempt fails.
    """
    return ensure_artifact(kafka_libs_artifact(version))


def ensure_kafka_tools(version: str = KAFKA_VERSION) -> Path:
    """Return a directory of jars that runs Kafka ``version``'s command-line tools."""
    return ensure_artifact(kafka_tools_artifact(version))


def ensure_apicurio(version: str) -> Path:
    """Return the unpacked Apicurio Registry ``version`` (see :func:`runner_jar`)."""
    return ensure_artifact(apicurio_artifact(version))


def runner_jar(app: Path) -> Path:
    """The jar that starts an unpacked Quarkus build: ``quarkus-run.jar`` (a fast-jar
    build, Apicurio 3.1+) or ``<name>-runner.jar`` next to ``lib/`` (a legacy-jar build,
    as Apicurio 3.0.x ships)."""
    fast = app / "quarkus-run.jar"
    if fast.is_file():
        return fast
    legacy = sorted(app.glob("*-runner.jar"))
    return legacy[0] if legacy else fast

"""A throwaway PostgreSQL server for tests, or the one ``TIDINGS_TEST_POSTGRES_URL`` names.

The server runs from the PostgreSQL binaries installed on the machine (``pg_config
--bindir``, else the newest ``/usr/lib/postgresql/*/bin``) in a temp directory, on a
free port of 127.0.0.1, with its unix socket in that directory. ``initdb`` refuses
to run as root, so under root the server runs as the ``postgres`` OS user. It is
stopped with ``pg_ctl stop`` (by data directory, never by process name) and its
directory deleted when the context manager exits.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV_URL = "TIDINGS_TEST_POSTGRES_URL"
"""When set, tests use this server as is and start none."""

_OS_USER = "postgres"
_START_TIMEOUT_S = 60
_NEEDED = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started on this machine."""


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
            if out:
                candidates.append(Path(out))

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    candidates += [Path(p) for p in
                   sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in _NEEDED):
            return directory
    return None


def _run_as() -> str | None:
    """The OS user to run the server as: ``postgres`` when we are root, else None (us)."""
    return _OS_USER if os.geteuid() == 0 else None


def postgres_available() -> str | None:
    """None when :func:`postgres_server` can work here, else the reason it cannot."""
    if os.environ.get(ENV_URL):
        return None
    if find_bindir() is None:
        return ("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via "
                f"pg_config --bindir or /usr/lib/postgresql/*/bin; install them or set {ENV_URL}")
    if _run_as() is not None:
        try:
            pwd.getpwnam(_OS_USER)
        except KeyError:
            return (f"running as root and there is no {_OS_USER!r} OS user to run the server "
                    f"as (initdb refuses root); create one or set {ENV_URL}")
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], user: str | None, *, timeout: float) -> None:
    kwargs: dict[str, Any] = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                  "env": {**os.environ, "HOME": entry.pw_dir, "USER": user,
                          "LOGNAME": user}}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            cwd="/", check=False, **kwargs)
    if result.returncode != 0:
        raise PostgresUnavailable(
            f"{Path(command[0]).name} failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )


def _log_tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace").strip()[-2000:]
    except OSError:
        return "(no server log)"


class _Server:
    """One initdb'd data directory and the server started on it."""

    def __init__(self, bindir: Path, user: str | None) -> None:
        self.bindir = bindir
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.started = False
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        _run([str(self.bindir / "initdb"), "-D", str(self.data), "--auth=trust",
              "-U", "postgres", "--encoding=UTF8", "--no-sync"], self.user, timeout=120)

    def start(self, port: int, *, durable: bool = False) -> None:
        options = f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1"
        if not durable:  # tests need no crash safety of the server itself
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            _run([str(self.bindir / "pg_ctl"), "start", "-w", "-t", str(_START_TIMEOUT_S),
                  "-D", str(self.data), "-l", str(self.log), "-o", options],
                 self.user, timeout=_START_TIMEOUT_S + 30)
        except (PostgresUnavailable, subprocess.TimeoutExpired) as exc:
            self.stop()  # a server that came up late must not outlive us
            raise PostgresUnavailable(f"{exc}\nserver log:\n{_log_tail(self.log)}") from None
        self.started = True

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                _run([str(self.bindir / "pg_ctl"), "stop", "-m", "fast", "-w", "-t", "30",
                      "-D", str(self.data)], self.user, timeout=60)
            except (PostgresUnavailable, subprocess.TimeoutExpired):
                # The postmaster of *this* data directory, by its PID file; SIGQUIT is
                # PostgreSQL's immediate shutdown.
                pid = self._postmaster_pid()
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGQUIT)
        self.started = False

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Yield ``postgresql://postgres@127.0.0.1:PORT/postgres`` of a throwaway server.

    The server runs with fsync, synchronous_commit and full_page_writes off, unless
    ``durable`` keeps PostgreSQL's defaults (the benchmarks measure at those).
    ``TIDINGS_TEST_POSTGRES_URL``, when set, is yielded as is. Raises
    :class:`PostgresUnavailable` (naming why) when no server can be started.
    """
    existing = os.environ.get(ENV_URL)
    if existing:
        yield existing
        return
    reason = postgres_available()
    if reason is not None:
        raise PostgresUnavailable(reason)
    bindir = find_bindir()
    assert bindir is not None
    server = _Server(bindir, _run_as())

    def cleanup() -> None:
        server.stop()
        server.remove()

    # atexit covers a SystemExit/KeyboardInterrupt that skips the finally below.
    atexit.register(cleanup)
    try:
        server.init()
        last: PostgresUnavailable | None = None
        for _ in range(3):  # another process may take the free port before we bind it
            port = _free_port()
            try:
                server.start(port, durable=durable)
                break
            except PostgresUnavailable as exc:
                last = exc
        else:
            raise PostgresUnavailable(f"PostgreSQL did not start: {last}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        cleanup()
        atexit.unregister(cleanup)

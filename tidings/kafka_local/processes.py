"""Pid files and signalling of the broker JVMs a cluster owns.

A pid file can outlive its process and the pid can be reused by something
else, so before trusting or signalling a pid we check that it is still a java
process whose command line names this node's config file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path


def read_pid(path: Path) -> int | None:
    """The pid stored in ``path``, or None when missing or garbage."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid(path: Path, pid: int) -> None:
    """Store ``pid`` in ``path`` (replacing it atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(path)


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of a live process, or None if it does not exist (or is a zombie)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux"):
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        # A zombie has an empty cmdline: it is dead for our purposes.
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None
    try:
        out = subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.split() or None


def is_owned_java(pid: int, marker: str) -> bool:
    """True when ``pid`` is a live java process with ``marker`` in its arguments."""
    argv = process_cmdline(pid)
    if not argv:
        return False
    return os.path.basename(argv[0]).startswith("java") and marker in argv[1:]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # Our own children become zombies when they exit; collecting them keeps the
    # process table clean in long pytest sessions. Not our child: nothing to do.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def terminate(owned: Iterable[tuple[int, str]], timeout: float) -> list[int]:
    """SIGTERM each (pid, marker) still owned, wait up to ``timeout``, then SIGKILL.

    All processes are signalled together: a KRaft broker's controlled shutdown
    needs the controller quorum, which is only still there if the other nodes
    have not gone away first. Returns the pids that needed SIGKILL.
    """
    pending = {pid: marker for pid, marker in owned if is_owned_java(pid, marker)}
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            _reap(pid)
            if not is_owned_java(pid, pending[pid]):
                del pending[pid]
        if pending:
            time.sleep(0.1)
    killed = list(pending)
    for pid in killed:
        _signal(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 5.0
    while pending and time.monotonic() < kill_deadline:
        for pid in list(pending):
            _reap(pid)
            if not is_owned_java(pid, pending[pid]):
                del pending[pid]
        time.sleep(0.05)
    return killed

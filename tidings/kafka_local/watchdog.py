"""Stop a test cluster when the process that started it dies without cleaning up.

``python -m tidings.kafka_local.watchdog [--remove] STATE_DIR`` polls its
parent; once the parent is gone (SIGKILL, ``os._exit`` from a timeout, a
crash) it runs ``down`` on STATE_DIR's brokers and schema registry (and deletes
the dir with ``--remove``), so neither outlives a killed pytest run. The normal
path never gets here: the fixture stops the cluster, then this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tidings.kafka_local.cluster import LocalCluster
from tidings.kafka_local.registry import LocalRegistry

_POLL_S = 1.0


def spawn(state_dir: Path, remove: bool = False) -> subprocess.Popen[bytes]:
    """Start a watchdog for ``state_dir`` owned by the current process.

    ``remove``: also delete ``state_dir`` after stopping (for temp test dirs).
    """
    flags = ["--remove"] if remove else []
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.kafka_local.watchdog", *flags, str(state_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Survives the Ctrl-C / SIGTERM sent to the owner's process group.
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _owner_alive(owner: int) -> bool:
    # Reparenting (to init or a subreaper) is how an orphan learns its owner died.
    return os.getppid() == owner


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is ``[--remove] STATE_DIR``."""
    remove = bool(argv) and argv[0] == "--remove"
    args = argv[1:] if remove else argv
    if len(args) != 1:
        print("usage: python -m tidings.kafka_local.watchdog [--remove] STATE_DIR", file=sys.stderr)
        return 2
    state_dir = Path(args[0])
    owner = os.getppid()
    while _owner_alive(owner):
        time.sleep(_POLL_S)
    LocalCluster(state_dir).down(timeout=10)
    LocalRegistry(state_dir).down(timeout=10)
    if remove:
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

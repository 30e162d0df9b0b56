"""``tidings demo``: run the shop demo that ships beside topology.yaml.

The demo composes the repository's services (order service, inventory, email,
analytics), which the platform package never imports; so it runs as its own
process, ``python -m ops.demo``, from the directory of the topology file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tidings.errors import TidingsError
from tidings.settings import Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="the whole story on one machine (see --help)",
                            add_help=False)
    parser.add_argument("-f", "--file", type=Path, default=None, help="the topology file")
    parser.add_argument("demo_args", nargs=argparse.REMAINDER,
                        help="passed to the demo: --orders N, --timeout S, --keep (everything "
                             "left running with the console open), --keep-running (the "
                             "broker only)")
    parser.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else Settings().topology
    root = path.resolve().parent
    if not (root / "ops" / "demo" / "__main__.py").is_file():
        raise TidingsError(f"no demo next to {path} (expected ops/demo/); the demo ships with "
                           "the Tidings repository")
    # The demo runs a laptop's cluster: pinned to the local environment, whatever
    # TIDINGS_ENV the shell has, for the demo and every service it starts.
    return subprocess.call([sys.executable, "-m", "ops.demo", *args.demo_args], cwd=root,
                           env={**os.environ, "TIDINGS_ENV": "local"})

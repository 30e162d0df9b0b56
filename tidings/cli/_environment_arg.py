"""``--env NAME``: which of topology.yaml's environments a command uses."""

from __future__ import annotations

import argparse

ENV_HELP = ("the environment of topology.yaml to use (default: $TIDINGS_ENV, else local); "
            "its overrides are merged over the file")


def add_env_argument(parser: argparse.ArgumentParser, help_text: str = ENV_HELP) -> None:
    """Add ``--env`` to a command that reads topology.yaml."""
    parser.add_argument("--env", default=None, metavar="NAME", help=help_text)

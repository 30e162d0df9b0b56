"""The operations console: a web page over topology.yaml and the live cluster.

    tidings console [--port 8080] [--bind 127.0.0.1]

Overview (producers -> topics -> groups, live), a page per group, dead letters
(filter, decode, redrive, purge), replay (plan, run with progress, undo), topology
(plan, apply) and the audit log. Every action calls the same ``tidings.dlq``,
``tidings.replay`` and ``tidings.topology`` functions as the CLI; see
:mod:`tidings.console.auth` for tokens and roles.
"""

from __future__ import annotations

from tidings.console.app import create_app
from tidings.console.auth import Role, Tokens
from tidings.console.context import Console

__all__ = ["Console", "Role", "Tokens", "create_app"]

"""Files a local server (broker or registry) keeps in its state dir: a JSON record of the
last start, files replaced atomically, and the tail of a log for error messages."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: How many log lines an error message about a server that did not start shows.
LOG_TAIL_LINES = 5


def read_json_record(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it is missing or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last non-blank ``lines`` of a log (read from its last 16 KiB only)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]

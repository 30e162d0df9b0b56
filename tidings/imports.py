"""Import ``package.module:attribute`` references named in topology.yaml."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tidings.errors import ConfigError


@contextmanager
def on_sys_path(directory: Path) -> Iterator[None]:
    """Make modules next to topology.yaml importable for the duration of the block."""
    entry = str(directory)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            sys.path.remove(entry)


def import_reference(reference: str, root: Path) -> Any:
    """The object ``reference`` names, importing its module with ``root`` on sys.path."""
    module_name, _, attr = reference.partition(":")
    with on_sys_path(root):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import {reference!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"cannot import {reference!r}: {module_name!r} has no {attr!r}") \
            from None

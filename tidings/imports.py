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


def resolve_reference(reference: str, what: str = "reference") -> tuple[Any, str | None]:
    """The object ``module:attr`` names, or why it cannot be imported (``what`` says what
    the reference is for, in the message). Uses ``sys.path`` as it is."""
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        return None, f"{what} {reference!r} does not import: no module named {exc.name!r}"
    except Exception as exc:  # the referenced module is user code and may raise anything
        return None, f"{what} {reference!r} does not import: {type(exc).__name__}: {exc}"
    target = getattr(module, attr, None)
    if target is None:
        return None, f"{what} {reference!r}: module {module_name!r} has no {attr!r}"
    return target, None


def import_reference(reference: str, root: Path, what: str = "reference") -> Any:
    """The object ``reference`` names, importing with ``root`` on sys.path; raises
    :class:`ConfigError` with the reason when it cannot."""
    with on_sys_path(root):
        target, problem = resolve_reference(reference, what)
    if problem is not None:
        raise ConfigError(problem)
    return target

"""Round-trip edits of topology.yaml (comments and layout kept), and undo on failure."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from tidings.errors import ConfigError
from tidings.topology import Topology, load_topology


class ScaffoldError(ConfigError):
    """The requested entry cannot be added as asked."""


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line of the user's
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def flow_list(items: Iterable[Any]) -> CommentedSeq:
    """``[a, b]``, as topology.yaml writes short lists."""
    seq = CommentedSeq(list(items))
    seq.fa.set_flow_style()
    return seq


def flow_map(**items: Any) -> CommentedMap:
    """``{k: v}`` on one line."""
    mapping = CommentedMap(items)
    mapping.fa.set_flow_style()
    return mapping


class TopologyDocument:
    """topology.yaml, loaded for editing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = path.read_text(encoding="utf-8")
        self.data: CommentedMap = _yaml().load(self.original)
        if not isinstance(self.data, CommentedMap):
            raise ScaffoldError(f"{path.name}: the top level must be a mapping of sections")

    def section(self, name: str) -> CommentedMap:
        """The top-level section ``name``, added (empty) when the file lacks it."""
        section = self.data.get(name)
        if section is None:
            section = CommentedMap()
            self.data[name] = section
        if not isinstance(section, CommentedMap):
            raise ScaffoldError(f"{self.path.name}: {name} must be a mapping of name: settings")
        return section

    def text(self) -> str:
        out = io.StringIO()
        _yaml().dump(self.data, out)
        return out.getvalue()


@contextmanager
def transaction(path: Path) -> Iterator[list[Path]]:
    """Files the block creates (append them to the yielded list) and topology.yaml as
    it was are restored if the block raises."""
    original = path.read_text(encoding="utf-8")
    created: list[Path] = []
    try:
        yield created
    except BaseException:
        path.write_text(original, encoding="utf-8")
        for item in reversed(created):
            if item.is_file():
                item.unlink()
            elif item.is_dir() and not any(item.iterdir()):
                item.rmdir()
        raise


def write_new(path: Path, text: str, created: list[Path]) -> None:
    """Create ``path`` (and missing parent directories), never overwriting a file."""
    if path.exists():
        raise ScaffoldError(f"{path} already exists; not overwriting it")
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for directory in missing:
        directory.mkdir()
        created.append(directory)
    path.write_text(text, encoding="utf-8")
    created.append(path)


def reload(path: Path) -> Topology:
    """The edited topology, validated with its handlers and models imported."""
    return load_topology(path)

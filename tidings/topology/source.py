"""Read YAML while remembering the line of every key and list item.

Pydantic reports errors by location (``('consumers', 'email', 'retry', 1)``); a
person wants ``topology.yaml:31``. We compose the YAML node graph ourselves and
record, for every path, the line where it starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Path_ = tuple[str | int, ...]


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, at a line (1-based) when known.

    Warnings (the production lint) are printed and pass, unless ``--strict`` turns
    them into errors.
    """

    line: int | None
    message: str
    severity: Severity = "error"

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        kind = "warning: " if self.severity == "warning" else ""
        return f"{where}: {kind}{self.message}"


@dataclass
class SourceDocument:
    """Plain data from a YAML file, plus the line of each path in it."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        return nearest_line(self.lines, path)


def nearest_line(lines: Mapping[Path_, int], path: Path_) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    probe = tuple(path)
    while probe:
        if probe in lines:
            return lines[probe]
        probe = probe[:-1]
    return lines.get(())


def load_document(text: str) -> SourceDocument:
    """Parse YAML text; syntax errors and duplicate keys become problems, not exceptions."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or "invalid YAML"
        return SourceDocument(data=None, problems=[Problem(line, f"YAML syntax error: {what}")])
    finally:
        loader.dispose()
    doc = SourceDocument(data=None)
    if node is None:
        return doc
    doc.data = _build(node, (), doc, loader)
    return doc


def load_file(path: Path) -> SourceDocument:
    return load_document(path.read_text(encoding="utf-8"))


def _build(node: yaml.Node, path: Path_, doc: SourceDocument, loader: yaml.SafeLoader) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<:` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                doc.problems.append(
                    Problem(key_node.start_mark.line + 1, f"keys must be plain names, not {key!r}")
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            child = (*path, key)
            if key in result:
                first = doc.lines.get(child)
                where = f" (first at line {first})" if first else ""
                doc.problems.append(
                    Problem(
                        key_node.start_mark.line + 1,
                        f"duplicate key {_dotted(child)!r}{where}",
                    )
                )
                continue
            doc.lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, doc, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_build(item, (*path, index), doc, loader))
        return items
    return loader.construct_object(node, deep=True)


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)

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
        line, what = syntax_error(text, exc)
        return SourceDocument(data=None, problems=[Problem(line, f"YAML syntax error: {what}")])
    finally:
        loader.dispose()
    doc = SourceDocument(data=None)
    if node is None:
        return doc
    doc.data = _build(node, (), doc, loader)
    return doc


#: Where the parser notices an unclosed bracket or quote is where the file ends or the
#: next key starts; the mistake is where it opened, which PyYAML keeps as its context.
_OPENED = {
    "while parsing a flow sequence": "this '[' is never closed",
    "while parsing a flow mapping": "this '{' is never closed",
    "while scanning a quoted scalar": "this quote is never closed",
}


def syntax_error(text: str, exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """The line of the mistake behind a YAML syntax error, and what it is, in words.

    PyYAML reports where it gave up, which for the common slips is often a line or the
    whole file later than the mistake: an unclosed ``[``, ``{`` or quote is reported
    where the next key starts (or at the end of the file), a key without its colon at
    the line after it.
    """
    problem = exc.problem or "invalid YAML"
    at = exc.problem_mark.line + 1 if exc.problem_mark else None
    context = exc.context or ""
    if context in _OPENED and exc.context_mark is not None:
        gave_up = f" (the parser gave up at line {at}: {problem})" if at else ""
        return exc.context_mark.line + 1, _OPENED[context] + gave_up
    lines = text.splitlines()
    if at is None:
        return None, problem
    if "'\\t'" in problem or "\t" in problem:
        return at, "a tab character; YAML indents with spaces only"
    if problem.startswith("expected <block end>"):
        return at, ("this line's indentation lines up with no line above it; indent it "
                    "like its siblings")
    if problem == "mapping values are not allowed here":
        previous = _previous_line(lines, at)
        if previous is not None:
            number, content = previous
            if ":" not in content and not content.lstrip().startswith(("-", "#")):
                return number, f"missing ':' after {content.strip()!r}"
        return at, ("unexpected ':' (is this line indented deeper than the key above it, "
                    "or does a value with ': ' need quotes?)")
    return at, problem


def _previous_line(lines: list[str], line: int) -> tuple[int, str] | None:
    """The nearest line before ``line`` (1-based) that is neither blank nor a comment."""
    for number in range(line - 1, 0, -1):
        content = lines[number - 1]
        if content.strip() and not content.lstrip().startswith("#"):
            return number, content
    return None


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

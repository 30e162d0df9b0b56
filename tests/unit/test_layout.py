"""The house rules of the source tree: data flows one way, and no module imports in a circle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tidings"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at any level (TYPE_CHECKING and function bodies too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def test_the_platform_never_imports_the_services() -> None:
    offenders = sorted(
        f"{p.relative_to(REPO)} imports {m}"
        for p in PACKAGE.rglob("*.py") for m in _imports(p)
        if m.split(".")[0] in {"producers", "consumers", "ops"}
    )
    assert offenders == []


def test_the_codec_knows_nothing_of_the_topology() -> None:
    graph = _graph()
    offenders = sorted(f"{name} imports {m}" for name, deps in graph.items()
                       if name.startswith("tidings.codec") for m in deps
                       if m.startswith("tidings.topology"))
    assert offenders == []


def test_no_import_cycles_between_rooms() -> None:
    """Rooms are the sub-packages (codec, topology, producer, consumer, ...). A cycle
    among them means two rooms each need the other and cannot be read alone."""
    graph = _graph()

    def room(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    rooms: dict[str, set[str]] = {}
    for name, deps in graph.items():
        rooms.setdefault(room(name), set()).update(room(d) for d in deps if room(d) != room(name))
    # The top-level package re-exports names lazily from every room; it is no room.
    rooms.pop("tidings", None)
    for deps in rooms.values():
        deps.discard("tidings")

    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(rooms.get(node, ())):
            if nxt == path[0]:
                cycles.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:
                visit(nxt, [*path, nxt])

    for start in sorted(rooms):
        visit(start, [start])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)

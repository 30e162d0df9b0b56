"""Environments: one topology.yaml for a laptop, staging and production.

``environments:`` maps a name to a partial copy of the file's own sections. The
chosen environment is merged over the rest of the file (mappings key by key,
anything else replaced whole, ``null`` removes a setting) and the result is
validated like any file, so everything downstream sees one plain :class:`Topology`.
Each resolved path keeps the line it came from: a mistake in an override is
reported at the override's line, and ``topology show`` can say what an
environment changed.

An override changes how things run, never what exists: it may not add a topic or
a consumer group, and it may not touch the contract the services' code relies on
(events, subscriptions, handlers).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tidings.topology.model import SECTION_ENTRY_MODELS, SINGLE_SECTION_MODELS
from tidings.topology.source import Path_, Problem, SourceDocument

#: The environment used when none is chosen; it needs no entry under ``environments:``.
LOCAL = "local"
SECTION = "environments"
ENV_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

#: Sections an environment may not override, and why.
FIXED_SECTIONS: dict[str, str] = {
    "name": "name is the same in every environment (the cluster keeps this topology's state "
            "under it)",
    SECTION: "environments do not nest",
    "events": "events are the same in every environment (the services' code depends on "
              "them); override how they are carried instead (topics, consumers)",
}
#: Settings of an entry that an environment may not override, per keyed section.
FIXED_FIELDS: dict[str, frozenset[str]] = {
    "consumers": frozenset({"subscribes", "handler"}),
    "producers": frozenset({"publishes"}),
    "schedules": frozenset({"event"}),
}
#: For a keyed section, the sections whose entry names an override may use. By default
#: only the section's own entries (overriding a topic the file does not declare is a
#: mistake); a section keyed by service, such as ``deploy:``, accepts every service.
OVERRIDE_NAMES: dict[str, tuple[str, ...]] = {
    "deploy": ("deploy", "producers", "consumers"),
}


class EnvironmentNotDeclared(Exception):
    """``--env`` names an environment the file does not declare."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class Resolution:
    """The file as one environment sees it: plain data, with the line of every path."""

    env: str
    data: dict[str, Any]
    lines: dict[Path_, int]
    #: Resolved paths the environment set (or removed), with the line of the override.
    overridden: dict[Path_, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: Every environment the file declares, ``local`` first.
    declared: tuple[str, ...] = (LOCAL,)

    def document(self) -> SourceDocument:
        return SourceDocument(data=self.data, lines=self.lines)


def overridable_sections() -> list[str]:
    """Every top-level section an environment may override, in declaration order.

    Read from the model at call time, so a section added there (``deploy:``,
    ``schedules:``) can be overridden per environment without a change here.
    """
    sections = [*SINGLE_SECTION_MODELS, *SECTION_ENTRY_MODELS]
    return [s for s in sections if s not in FIXED_SECTIONS]


def declared_environments(data: Any) -> tuple[str, ...]:
    """The environment names in a parsed file, ``local`` first (it always exists)."""
    raw = data.get(SECTION) if isinstance(data, dict) else None
    names = [str(name) for name in raw] if isinstance(raw, dict) else []
    return (LOCAL, *(name for name in names if name != LOCAL))


def block_lines(doc: SourceDocument, env: str) -> set[int]:
    """The lines of the file that belong to environment ``env``'s entry."""
    prefix = (SECTION, env)
    return {line for path, line in doc.lines.items() if path[:2] == prefix}


def resolve(doc: SourceDocument, env: str) -> Resolution:
    """Merge environment ``env`` over the rest of ``doc`` (a mapping at the top level).

    Problems with the overrides are returned, each at its line; an environment the
    file does not declare raises :class:`EnvironmentNotDeclared`.
    """
    data: dict[str, Any] = doc.data
    base = {key: value for key, value in data.items() if key != SECTION}
    lines = {path: line for path, line in doc.lines.items() if not path or path[0] != SECTION}
    declared = declared_environments(data)
    resolution = Resolution(env, copy.deepcopy(base), lines, declared=declared)
    raw = data.get(SECTION)
    if raw is not None and not isinstance(raw, dict):
        resolution.problems.append(Problem(doc.line_of((SECTION,)),
                                           "environments must be a mapping of name: overrides"))
        raw = None
    for name in raw or {}:
        if not ENV_NAME.match(str(name)):
            resolution.problems.append(Problem(
                doc.line_of((SECTION, name)),
                f"environment name {name!r} must start with a lower case letter and hold "
                "only lower case letters, digits, '-' or '_'"))
    if raw is None or env not in raw:
        if env != LOCAL:
            raise EnvironmentNotDeclared(_not_declared(doc, env, declared))
        return resolution
    override = raw[env]
    if override is None:
        return resolution
    if not isinstance(override, dict):
        resolution.problems.append(Problem(
            doc.line_of((SECTION, env)),
            f"environments.{env} must be a mapping of the sections it overrides"))
        return resolution
    _Merger(doc, env, base, resolution).merge_sections(override)
    return resolution


def _not_declared(doc: SourceDocument, env: str, declared: Iterable[str]) -> Problem:
    names = list(declared)
    if SECTION not in doc.data:
        return Problem(None, f"environment {env!r} is not declared: the file has no "
                             f"environments section, so only {LOCAL!r} exists")
    close = difflib.get_close_matches(env, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return Problem(doc.line_of((SECTION,)),
                   f"environment {env!r} is not declared under environments ({hint}"
                   f"declared: {', '.join(names)})")


class _Merger:
    """Checks an environment's overrides and merges the sound ones, keeping lines."""

    def __init__(self, doc: SourceDocument, env: str, base: Mapping[str, Any],
                 resolution: Resolution) -> None:
        self.doc = doc
        self.env = env
        self.base = base
        self.out = resolution

    def problem(self, path: Path_, message: str) -> None:
        self.out.problems.append(Problem(self.doc.line_of((SECTION, self.env, *path)),
                                         message))

    def merge_sections(self, override: Mapping[str, Any]) -> None:
        allowed = overridable_sections()
        for section, value in override.items():
            where = f"environments.{self.env}"
            if section in FIXED_SECTIONS:
                self.problem((section,), f"{where}.{section}: {FIXED_SECTIONS[section]}")
                continue
            if section not in allowed:
                close = difflib.get_close_matches(str(section), allowed, n=1, cutoff=0.6)
                hint = (f" (did you mean {close[0]!r}?)" if close
                        else f" (an environment overrides: {', '.join(allowed)})")
                self.problem((section,), f"unknown key {section!r} in {where}{hint}")
                continue
            if value is None:
                continue
            if not isinstance(value, dict):
                self.problem((section,), f"{where}.{section} must be a mapping")
                continue
            if section in SECTION_ENTRY_MODELS:
                self._merge_entries(section, value)
            else:
                self._merge((section,), self._target((section,)), value)

    def _merge_entries(self, section: str, entries: Mapping[str, Any]) -> None:
        sources = OVERRIDE_NAMES.get(section, (section,))
        known: dict[str, None] = {}
        for source in sources:
            declared = self.base.get(source)
            if isinstance(declared, dict):
                known.update(dict.fromkeys(str(name) for name in declared))
        noun = section[:-1] if section.endswith("s") else section
        for name, value in entries.items():
            path = (section, name)
            if name not in known:
                close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                under = " or ".join(sources)
                self.problem(path, f"environments.{self.env}.{section}.{name} overrides "
                             f"{noun} {name!r}, which is not declared under {under}{hint}; "
                             "an environment changes settings, it does not add entries")
                continue
            if value is None:
                continue
            if not isinstance(value, dict):
                self.problem(path, f"environments.{self.env}.{section}.{name} must be a "
                             "mapping of the settings it overrides")
                continue
            fixed = FIXED_FIELDS.get(section, frozenset())
            sound = {}
            for key, setting in value.items():
                if key in fixed:
                    self.problem((*path, key), f"environments.{self.env}.{section}.{name}."
                                 f"{key}: {key} is the same in every environment (the "
                                 "services' code depends on it)")
                else:
                    sound[key] = setting
            self._merge(path, self._target(path), sound)

    def _target(self, path: Path_) -> dict[str, Any]:
        """The mapping at ``path`` in the resolved data, created when the file has none."""
        node: dict[str, Any] = self.out.data
        for depth, key in enumerate(path):
            child = node.get(str(key))
            if not isinstance(child, dict):
                child = {}
                node[str(key)] = child
                self._mark((*path[: depth + 1],))
            node = child
        return node

    def _merge(self, path: Path_, target: dict[str, Any], override: Mapping[str, Any]) -> None:
        for key, value in override.items():
            child = (*path, key)
            if value is None:
                target.pop(key, None)
                self._drop(child)
                self._mark(child)
            elif isinstance(value, dict) and isinstance(target.get(key), dict):
                self._merge(child, target[key], value)  # an empty mapping changes nothing
            else:
                target[key] = copy.deepcopy(value)
                self._drop(child)
                source = (SECTION, self.env, *child)
                for src_path, line in self.doc.lines.items():
                    if src_path[: len(source)] == source:
                        self.out.lines[(*child, *src_path[len(source):])] = line
                self._mark(child)

    def _drop(self, path: Path_) -> None:
        for stale in [p for p in self.out.lines if p[: len(path)] == path]:
            del self.out.lines[stale]

    def _mark(self, path: Path_) -> None:
        line = self.doc.line_of((SECTION, self.env, *path))
        if line is not None:
            self.out.overridden[path] = line
            self.out.lines.setdefault(path, line)

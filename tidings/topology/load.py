"""Load topology.yaml into a :class:`Topology`, reporting every problem with its line."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tidings.errors import ConfigError
from tidings.settings import Settings
from tidings.topology import checks, environments
from tidings.topology.model import (
    SECTION_ENTRY_MODELS,
    SINGLE_SECTION_MODELS,
    TOP_LEVEL_KEYS,
    ClusterSpec,
    DefaultsSpec,
)
from tidings.topology.source import Path_, Problem, SourceDocument, load_document
from tidings.topology.topology import Topology

DEFAULT_NAME = "default"


class TopologyInvalid(ConfigError):
    """topology.yaml has problems; ``problems`` lists each with its line."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = sorted(problems, key=lambda p: (p.line or 0, p.message))
        count = len(self.problems)
        lines = [p.render(filename) for p in self.problems]
        lines.append(f"{count} problem{'s' if count != 1 else ''} in {filename}")
        super().__init__("\n".join(lines))

    def render(self) -> str:
        return str(self)


def display_name(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def chosen_environment(env: str | None = None) -> str:
    """``env`` when given, else ``TIDINGS_ENV``, else ``local``."""
    return env or Settings().env or environments.LOCAL


def load_topology(
    path: Path | str,
    *,
    check_imports: bool = True,
    broker_count: int | None = None,
    env: str | None = None,
    check_compatibility: bool = True,
) -> Topology:
    """Read and validate a topology file, resolved for one environment.

    ``env`` names an entry of ``environments:`` (default: ``TIDINGS_ENV``, else
    ``local``); its overrides are merged in before validation. ``check_imports``
    imports each consumer's handler (with the file's directory on ``sys.path``);
    ``broker_count``, when known, bounds replication factors (else the
    environment's ``cluster.brokers`` does). Raises :class:`TopologyInvalid` listing
    every problem found. ``check_compatibility`` false leaves schema evolution to the
    caller (``tidings schemas check --registry`` reports it next to the registry's verdict).
    """
    path = Path(path).resolve()
    filename = display_name(path)
    doc = _read(path, filename)
    resolution = _resolve(doc, chosen_environment(env), filename)
    problems = list(resolution.problems)
    resolved = resolution.document()
    parsed = _parse_sections(resolved, problems)
    topology = Topology(
        path=path,
        name=str(resolved.data.get("name") or DEFAULT_NAME),
        cluster=parsed.get("cluster") or ClusterSpec(),
        defaults=parsed.get("defaults") or DefaultsSpec(),
        topics=parsed.get("topics", {}),
        events=parsed.get("events", {}),
        producers=parsed.get("producers", {}),
        consumers=parsed.get("consumers", {}),
        lines=resolved.lines,
        env=resolution.env,
        environments=resolution.declared,
        scheduling=parsed.get("scheduling"),
        schedules=parsed.get("schedules", {}),
        deploy=parsed.get("deploy"),
    )
    broken = {section: parsed.get(f"{section}!broken", set()) for section in SECTION_ENTRY_MODELS}
    brokers = broker_count if broker_count is not None else topology.cluster.brokers
    problems.extend(
        checks.check_topology(
            topology, broken=broken, check_imports=check_imports, broker_count=brokers,
            check_compatibility=check_compatibility,
        )
    )
    if problems:
        raise TopologyInvalid(filename, label_problems(problems, doc, resolution.env))
    return topology


def resolve_file(path: Path | str, env: str | None = None) -> environments.Resolution:
    """The file's plain data as environment ``env`` sees it, with lines (not validated)."""
    path = Path(path).resolve()
    filename = display_name(path)
    return _resolve(_read(path, filename), chosen_environment(env), filename)


def load_environments(
    path: Path | str, *, check_imports: bool = True, envs: Sequence[str] | None = None
) -> list[Topology]:
    """Validate the file in every environment it declares (or in ``envs``).

    Raises one :class:`TopologyInvalid` with every problem of every environment; a
    problem that only one environment has is labelled with its name.
    """
    path = Path(path).resolve()
    filename = display_name(path)
    if envs is None:
        envs = environments.declared_environments(_read(path, filename).data)
    topologies: list[Topology] = []
    problems: list[Problem] = []
    seen: set[tuple[int | None, str]] = set()
    for index, env in enumerate(envs):
        try:
            # Handlers and models are the same in every environment: import them once.
            topologies.append(load_topology(path, env=env,
                                            check_imports=check_imports and index == 0))
        except TopologyInvalid as exc:
            for problem in exc.problems:
                message = _unlabelled(problem.message)
                if (problem.line, message) in seen:
                    continue
                seen.add((problem.line, message))
                labelled = index > 0 and not problem.message.startswith("[")
                problems.append(dataclasses.replace(problem, message=f"[{env}] {message}")
                                if labelled else problem)
    if problems:
        raise TopologyInvalid(filename, problems)
    return topologies


def label_problems(problems: Iterable[Problem], doc: SourceDocument, env: str) -> list[Problem]:
    """Problems at a line of environment ``env``'s overrides, labelled ``[env]``."""
    block = environments.block_lines(doc, env)
    return [dataclasses.replace(p, message=f"[{env}] {p.message}")
            if p.line in block and not p.message.startswith(f"[{env}] ") else p
            for p in problems]


def _unlabelled(message: str) -> str:
    if message.startswith("[") and "] " in message:
        return message.split("] ", 1)[1]
    return message


def _read(path: Path, filename: str) -> SourceDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{filename}: no such file; create it or pass --file") from None
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read it: {exc.strerror}") from None
    doc = load_document(text)
    problems = list(doc.problems)
    if doc.data is None and not problems:
        problems.append(Problem(1, "the file is empty; declare at least topics and events"))
    if problems and doc.data is None:
        raise TopologyInvalid(filename, problems)
    if not isinstance(doc.data, dict):
        raise TopologyInvalid(filename, [Problem(1, "the top level must be a mapping of sections")])
    return doc


def _resolve(doc: SourceDocument, env: str, filename: str) -> environments.Resolution:
    try:
        resolution = environments.resolve(doc, env)
    except environments.EnvironmentNotDeclared as exc:
        raise TopologyInvalid(filename, [exc.problem]) from None
    # Problems YAML parsing found (duplicate keys, odd keys) stay with the file.
    resolution.problems[:0] = doc.problems
    return resolution


def _parse_sections(doc: SourceDocument, problems: list[Problem]) -> dict[str, Any]:
    """Validate each section entry on its own, so one bad entry hides no other problem."""
    data: dict[str, Any] = doc.data
    parsed: dict[str, Any] = {}
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.append(
                Problem(doc.line_of((key,)), _unknown_key(str(key), TOP_LEVEL_KEYS, "top level"))
            )
    if "name" in data and not isinstance(data["name"], str):
        problems.append(Problem(doc.line_of(("name",)), "name must be text"))

    for section, single_model in SINGLE_SECTION_MODELS.items():
        if section in data:
            value = data[section] if data[section] is not None else {}
            parsed[section] = _validate(single_model, value, (section,), doc, problems)

    for section, entry_model in SECTION_ENTRY_MODELS.items():
        raw = data.get(section)
        if raw is None:
            continue
        if not isinstance(raw, dict):
            problems.append(
                Problem(doc.line_of((section,)), f"{section} must be a mapping of name: settings")
            )
            continue
        entries: dict[str, Any] = {}
        broken: set[str] = set()
        for name, value in raw.items():
            model = _validate(entry_model, value if value is not None else {},
                              (section, name), doc, problems)
            if model is None:
                broken.add(name)
            else:
                entries[name] = model
        parsed[section] = entries
        parsed[f"{section}!broken"] = broken
    return parsed


def _validate(
    model: type[BaseModel], value: Any, path: Path_, doc: SourceDocument, problems: list[Problem]
) -> Any:
    if not isinstance(value, dict):
        problems.append(
            Problem(doc.line_of(path), f"{_dotted(path)} must be a mapping, not {_kind(value)}")
        )
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors()
    for error in errors:
        loc = (*path, *error["loc"])
        problems.append(Problem(doc.line_of(loc), _describe(model, path, error)))
    # Keep what is valid of the entry (the failing keys fall back to their defaults) so
    # its other keys are still cross-checked: every mistake in one run, not one per run.
    failing = {error["loc"][0] for error in errors if error["loc"]}
    try:
        return model.model_validate({k: v for k, v in value.items() if k not in failing})
    except ValidationError:
        return None


def _describe(model: type[BaseModel], path: Path_, error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    where = _dotted((*path, *loc))
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        fields = _field_names(owner) if owner else []
        return _unknown_key(str(loc[-1]), fields, _dotted((*path, *loc[:-1])))
    if kind == "missing":
        return f"{_dotted((*path, *loc[:-1]))}: missing required key {loc[-1]!r}"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind == "greater_than_equal":
        return f"{where} must be at least {error['ctx']['ge']} (got {error.get('input')!r})"
    if kind == "less_than_equal":
        return f"{where} must be at most {error['ctx']['le']} (got {error.get('input')!r})"
    if kind == "too_short":
        return f"{where} must not be empty"
    return f"{where}: {message}"


def _model_at(model: type[BaseModel], loc: Iterable[str | int]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str):
            return None
        field = _field_by_key(current, part)
        annotation = field.annotation if field else None
        current = _nested_model(annotation)
    return current


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _unknown_key(key: str, allowed: Iterable[str], where: str) -> str:
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
    return f"unknown key {key!r} in {where}{hint}"


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path) or "top level"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{value!r}"

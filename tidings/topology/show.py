"""``topology show``: the declaration as one environment gets it, for a reviewer to read.

The output is YAML a person can diff by eye: the file with the environment's
overrides merged in, each overridden setting marked with the line it comes from,
and the topics the cluster will hold listed at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from tidings.topology.environments import Resolution
from tidings.topology.model import TOP_LEVEL_KEYS
from tidings.topology.review import show_config
from tidings.topology.source import Path_
from tidings.topology.topology import Topology


def render_resolved(resolution: Resolution, topology: Topology, filename: str) -> str:
    """The resolved declaration as YAML, with override marks and the implied topics."""
    env = resolution.env
    out = [f"# {filename} as environment {env!r} resolves it"]
    if resolution.overridden:
        first, last = min(resolution.overridden.values()), max(resolution.overridden.values())
        out.append(f"# '# {env}: line N' marks what environments.{env} sets "
                   f"(lines {first}-{last})")
    elif env != "local" or len(resolution.declared) > 1:
        out.append(f"# environments.{env} overrides nothing")
    # Sections in the model's order, so one an environment adds (often cluster:) shows
    # where a reader looks for it rather than at the end.
    order = {key: index for index, key in enumerate(TOP_LEVEL_KEYS)}
    data = dict(sorted(resolution.data.items(), key=lambda kv: order.get(kv[0], len(order))))
    _mapping(data, (), 0, out, resolution.overridden, env)
    desired = topology.desired_topics()
    out += ["", f"# Topics on the cluster in {env}: {len(topology.topics)} declared, "
                f"{len(desired) - len(topology.topics)} retry/DLQ/replay"]
    width = max((len(t.name) for t in desired), default=0)
    for topic in desired:
        configs = ", ".join(f"{k}={show_config(k, v)}" for k, v in sorted(topic.config.items()))
        out.append(f"#   {topic.name:<{width}}  {topic.partitions} partitions, replication "
                   f"{topic.replication_factor}" + (f", {configs}" if configs else ""))
    return "\n".join(out) + "\n"


def _mapping(data: Mapping[str, Any], path: Path_, depth: int, out: list[str],
             marks: Mapping[Path_, int], env: str) -> None:
    pad = "  " * depth
    for key, value in data.items():
        child = (*path, key)
        mark = f"  # {env}: line {marks[child]}" if child in marks else ""
        name = _scalar(key)
        if depth == 0 and out and out[-1] and isinstance(value, dict):
            out.append("")  # a blank line between sections, as the file has them
        if isinstance(value, dict) and value:
            out.append(f"{pad}{name}:{mark}")
            _mapping(value, child, depth + 1, out, marks, env)
        elif isinstance(value, list) and value and not all(_is_scalar(v) for v in value):
            out.append(f"{pad}{name}:{mark}")
            for item in value:
                out.append(f"{pad}  - {_flow(item)}")
        else:
            out.append(f"{pad}{name}: {_flow(value)}{mark}")


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()

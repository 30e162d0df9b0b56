"""The team's targets (issue #10), checked against a run: reported, never asserted.

Every target is a same-run ratio (see :meth:`benchmarks.report.Row.ratio_to`: the
median over the alternated rounds of each round's ratio), so it says what the platform
itself costs on whatever machine ran it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.report import Row, ScenarioResult, ratio_text

NOT_MEASURED = "not measured"


def _scenario(results: Sequence[ScenarioResult], key: str) -> ScenarioResult | None:
    return next((s for s in results if s.key == key), None)


def _measured(scenario: ScenarioResult | None, contender: str) -> Row | None:
    """The contender's row when it has at least one measured round, else None."""
    row = scenario.row(contender) if scenario is not None else None
    if row is None or row.error or row.unavailable or not row.rate():
        return None
    return row


def _why_not(scenario: ScenarioResult | None, *contenders: str) -> str:
    """Why a target has no number: the first named row that failed or is unavailable."""
    for contender in contenders:
        row = scenario.row(contender) if scenario is not None else None
        if row is None:
            continue
        if row.unavailable:
            return f"{contender} unavailable (its row says why)"
        if row.error:
            return f"{contender} failed (its row says why)"
    return NOT_MEASURED


def _target(name: str, goal: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"name": name, "goal": goal, "measured": measured, "met": met}


def _share(results: Sequence[ScenarioResult], key: str, contender: str, base: str,
           name: str, goal: float, base_label: str) -> dict[str, Any]:
    """``contender`` ≥ ``goal`` x ``base`` (both rows of scenario ``key``)."""
    scenario = _scenario(results, key)
    mine, theirs = _measured(scenario, contender), _measured(scenario, base)
    wanted = f"≥ {goal:.0%} of {base_label}"
    ratio = mine.ratio_to(theirs) if mine and theirs else None
    if mine is None or theirs is None or ratio is None:
        return _target(name, wanted, _why_not(scenario, contender, base), None)
    return _target(name, wanted, f"{ratio_text(ratio)} of {base_label} ({mine.rate():,.0f} "
                   f"vs {theirs.rate():,.0f} msgs/s)", ratio >= goal)


def _times(results: Sequence[ScenarioResult], key: str, contender: str, other: str,
           name: str, factor: float, goal: str) -> dict[str, Any]:
    """``contender`` ≥ ``factor`` x ``other``: 1 means "ahead of" (strictly faster)."""
    scenario = _scenario(results, key)
    mine, theirs = _measured(scenario, contender), _measured(scenario, other)
    ratio = mine.ratio_to(theirs) if mine and theirs else None
    if mine is None or theirs is None or ratio is None:
        return _target(name, goal, _why_not(scenario, contender, other), None)
    met = ratio > 1 if factor == 1 else ratio >= factor
    return _target(name, goal, f"{ratio:.2f}x ({mine.rate():,.0f} vs {other} "
                   f"{theirs.rate():,.0f} msgs/s)", met)


def _latency(results: Sequence[ScenarioResult], slack_ms: float) -> dict[str, Any]:
    """Tidings' p99 ≤ raw's p99 + ``slack_ms``: the median over the rounds of each
    round's difference."""
    name, goal = "End-to-end p99 at 1,000 events/s", f"≤ raw p99 + {slack_ms:g} ms"
    scenario = _scenario(results, "latency")
    tidings, raw = _measured(scenario, "tidings"), _measured(scenario, "raw")
    if tidings is None or raw is None:
        return _target(name, goal, _why_not(scenario, "tidings", "raw"), None)
    mine = [r["p99_ms"] for r in tidings.runs if r.get("p99_ms") is not None]
    theirs = [r["p99_ms"] for r in raw.runs if r.get("p99_ms") is not None]
    if not mine or not theirs:
        return _target(name, goal, NOT_MEASURED, None)
    p99, base = statistics.median(mine), statistics.median(theirs)
    gap = statistics.median([a - b for a, b in zip(mine, theirs, strict=True)]) \
        if len(mine) == len(theirs) else p99 - base
    return _target(name, goal, f"p99 {p99:.1f} ms vs raw {base:.1f} ms ({gap:+.1f} ms; "
                   f"p50 {tidings.median_of('p50_ms') or 0:.1f} ms)", gap <= slack_ms)


def _rss(results: Sequence[ScenarioResult], limit_mb: float) -> dict[str, Any]:
    name, goal = "Consumer RSS, steady", f"< {limit_mb:g} MB"
    scenario = _scenario(results, "consume")
    tidings = _measured(scenario, "tidings")
    rss = tidings.median_of("rss_mb") if tidings else None
    if tidings is None or rss is None:
        return _target(name, goal, _why_not(scenario, "tidings"), None)
    return _target(name, goal, f"{rss:.0f} MB (peak {tidings.peak_rss() or 0:.0f} MB)",
                   rss < limit_mb)


def evaluate(results: Sequence[ScenarioResult]) -> list[dict[str, Any]]:
    return [
        _share(results, "consume", "tidings", "floor",
               "Consume with idempotency (SQLite) vs the consume floor", 0.75, "floor"),
        _times(results, "consume", "tidings", "quix-avro",
               "Consume with idempotency (SQLite) vs Quix doing Avro + pydantic", 1,
               "ahead of quix-avro"),
        _times(results, "consume", "tidings", "faststream",
               "Consume with idempotency (SQLite) vs FastStream", 3, "≥ 3x FastStream"),
        _share(results, "consume", "tidings-pg", "floor",
               "Consume with idempotency (PostgreSQL, durable) vs the consume floor", 0.60,
               "floor"),
        _share(results, "produce", "tidings", "floor",
               "Typed publish vs the publish floor", 0.75, "floor"),
        _times(results, "produce", "tidings", "quix-avro",
               "Typed publish vs Quix doing Avro + pydantic", 1, "ahead of quix-avro"),
        _share(results, "replay", "tidings", "raw", "Replay copy vs the raw pipe", 0.60,
               "raw pipe"),
        _latency(results, 3.0),
        _times(results, "scaling", "tidings x 2", "tidings x 1",
               "Two consumer processes vs one (where two cores are free)", 1.8,
               "≥ 1.8x one"),
        _rss(results, 120),
    ]

"""The team's targets (issue #6), checked against a run: reported, never asserted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.report import ScenarioResult, ratio_text


def _rows(results: Sequence[ScenarioResult], key: str) -> dict[str, dict[str, Any]]:
    for scenario in results:
        if scenario.key == key:
            return {s["contender"]: s for s in scenario.summaries()
                    if not s["error"] and not s["unavailable"] and s["msgs_per_s"]}
    return {}


def _ratio_target(results: Sequence[ScenarioResult], key: str, name: str,
                  goal: float) -> dict[str, Any]:
    rows = _rows(results, key)
    tidings = rows.get("tidings")
    ratio = tidings["ratio_to_raw"] if tidings else None
    return {"name": name, "goal": f"≥ {goal:.0%} of raw",
            "measured": "not measured" if ratio is None else f"{ratio_text(ratio)} of raw "
            f"({tidings['msgs_per_s']:,.0f} vs {rows['raw']['msgs_per_s']:,.0f} msgs/s)"
            if tidings else "not measured",
            "met": None if ratio is None else ratio >= goal}


def _ahead(results: Sequence[ScenarioResult], key: str, name: str) -> dict[str, Any]:
    rows = _rows(results, key)
    tidings = rows.get("tidings")
    peers = {p: rows[p]["msgs_per_s"] for p in ("faststream", "quix") if p in rows}
    if tidings is None or not peers:
        return {"name": name, "goal": "faster than FastStream and Quix",
                "measured": "not measured", "met": None}
    shown = ", ".join(f"{p} {v:,.0f}" for p, v in peers.items())
    return {"name": name, "goal": "faster than FastStream and Quix",
            "measured": f"tidings {tidings['msgs_per_s']:,.0f} vs {shown} msgs/s",
            "met": all(tidings["msgs_per_s"] > v for v in peers.values())}


def evaluate(results: Sequence[ScenarioResult]) -> list[dict[str, Any]]:
    targets = [
        _ratio_target(results, "produce", "Typed publish vs raw produce", 0.50),
        _ahead(results, "produce", "Typed publish vs the peers"),
        _ratio_target(results, "consume", "Consume pipeline vs raw consume", 0.40),
        _ahead(results, "consume", "Consume pipeline vs the peers"),
    ]
    latency = _rows(results, "latency").get("tidings")
    p99 = latency["p99_ms"] if latency else None
    targets.append({"name": "End-to-end p99 at 1,000 events/s", "goal": "≤ 10 ms",
                    "measured": "not measured" if p99 is None else
                    f"p99 {p99:.1f} ms (p50 {latency['p50_ms']:.1f} ms)" if latency else "",
                    "met": None if p99 is None else p99 <= 10})
    targets.append(_ratio_target(results, "replay", "Replay copy vs raw pipe", 0.70))
    consume = _rows(results, "consume").get("tidings")
    rss = consume["steady_rss_mb"] if consume else None
    targets.append({"name": "Consumer service resident memory (steady)", "goal": "< 120 MB",
                    "measured": "not measured" if rss is None else
                    f"{rss:.0f} MB (peak {consume['peak_rss_mb']:.0f} MB)" if consume else "",
                    "met": None if rss is None else rss < 120})
    return targets

"""Results: one row per contender and scenario, rendered as Markdown and as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import median


@dataclass
class Row:
    """A contender in a scenario: one result per round, or why it has none."""

    contender: str
    what: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    unavailable: str | None = None

    def median_of(self, key: str) -> float | None:
        return median([float(r[key]) for r in self.runs if r.get(key) is not None])

    def rate(self, key: str = "msgs") -> float | None:
        return median([r[key] / r["seconds"] for r in self.runs if r.get("seconds")])

    def mb_per_s(self) -> float | None:
        return median([r["bytes"] / r["seconds"] / 1e6 for r in self.runs
                       if r.get("seconds") and r.get("bytes")])

    def peak_rss(self) -> float | None:
        values = [float(r["peak_rss_mb"]) for r in self.runs if r.get("peak_rss_mb")]
        return max(values) if values else None

    def rates(self) -> list[float]:
        return [r["msgs"] / r["seconds"] for r in self.runs if r.get("seconds")]

    def ratio_to(self, other: Row | None) -> float | None:
        """This row's rate against ``other``'s, as a same-run ratio: the median over the
        rounds of round r's rate over ``other``'s round r (the two ran minutes apart at
        most, so drift on a shared machine cancels); the ratio of the medians when the
        rounds do not pair up (a contender failed part-way)."""
        if other is None:
            return None
        mine, theirs = self.rates(), other.rates()
        if mine and len(mine) == len(theirs) and all(theirs):
            return median([a / b for a, b in zip(mine, theirs, strict=True)])
        rate, base = self.rate(), other.rate()
        return rate / base if rate and base else None

    def summary(self, baseline: Row | None, floor: Row | None = None) -> dict[str, Any]:
        rate = self.rate()
        return {
            "contender": self.contender,
            "what": self.what,
            "rounds": len(self.runs),
            "msgs_per_s": rate,
            "msgs_per_s_runs": [round(r["msgs"] / r["seconds"]) for r in self.runs
                                if r.get("seconds")],
            "mb_per_s": self.mb_per_s(),
            "ratio_to_raw": self.ratio_to(baseline),
            "ratio_to_floor": self.ratio_to(floor),
            "p50_ms": self.median_of("p50_ms"),
            "p99_ms": self.median_of("p99_ms"),
            "p999_ms": self.median_of("p999_ms"),
            "bytes_per_msg": self.median_of("bytes_per_msg"),
            "steady_rss_mb": self.median_of("rss_mb"),
            "peak_rss_mb": self.peak_rss(),
            "startup_s": self.median_of("startup_s"),
            "error": self.error,
            "unavailable": self.unavailable,
            "runs": self.runs,
        }


@dataclass
class ScenarioResult:
    key: str
    title: str
    description: str
    rows: list[Row]
    columns: Sequence[str]
    baseline: str | None = "raw"
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The contender whose rate the "vs floor" column divides by (the path's floor).
    floor: str | None = None

    def row(self, contender: str | None) -> Row | None:
        return next((r for r in self.rows if r.contender == contender), None)

    def summaries(self) -> list[dict[str, Any]]:
        base, floor = self.row(self.baseline), self.row(self.floor)
        return [row.summary(base, floor) for row in self.rows]


DASH = "\u2013"  # an en dash: no value


def ratio_text(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


COLUMNS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "msgs": ("msgs/s (median)", lambda s: _num(s["msgs_per_s"])),
    "runs": ("each round", lambda s: " / ".join(f"{v:,}" for v in s["msgs_per_s_runs"])),
    "mb": ("MB/s", lambda s: _num(s["mb_per_s"], 1)),
    "ratio": ("vs raw", lambda s: ratio_text(s["ratio_to_raw"])),
    "floor": ("vs floor", lambda s: ratio_text(s["ratio_to_floor"])),
    "p50": ("p50 ms", lambda s: _num(s["p50_ms"], 1)),
    "p99": ("p99 ms", lambda s: _num(s["p99_ms"], 1)),
    "p999": ("p99.9 ms", lambda s: _num(s["p999_ms"], 1)),
    "startup": ("start-up s", lambda s: _num(s["startup_s"], 1)),
    "rss": ("steady RSS MB", lambda s: _num(s["steady_rss_mb"])),
    "peak": ("peak RSS MB", lambda s: _num(s["peak_rss_mb"])),
}


def render_markdown(meta: dict[str, Any], scenarios: Sequence[ScenarioResult],
                    targets: Sequence[dict[str, Any]]) -> str:
    lines = [
        "# Tidings benchmarks",
        "",
        f"Run {meta['started']} ({meta['mode']}, {meta['rounds']} round(s) per contender, "
        f"contenders taking turns, the order rotated each round), {meta['total_s']:.0f} s in all. "
        "Measurements, not tests: nothing fails on speed.",
        "",
        *([f"**Note: {meta['note']}**", ""] if meta.get("note") else []),
        f"- Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
        f"{meta['machine']['memory_gb']} GB, {meta['machine']['platform']}, "
        f"Python {meta['machine']['python']}",
        f"- Load average at start / end: {meta['machine']['load_average']} / "
        f"{meta['load_average_end']} (the machine is shared; numbers carry that noise)",
        f"- Broker: {meta['broker']}; every topic {meta['partitions']} partitions, "
        "replication 1",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Event: order.created, {meta['event']['avro_bytes']} bytes as Avro single-object "
        f"(+{meta['event']['tidings_header_bytes']} bytes of Tidings headers), "
        f"{meta['event']['json_bytes']} bytes as the JSON FastStream and Quix send",
        "- Every producer: acks=all, idempotence on, linger 5 ms",
        "- Ratios (vs raw, vs floor, the targets) are same-run ratios: the median over the "
        "rounds of each round's ratio (the contenders of a round ran back to back)",
        "",
    ]
    if targets:
        lines += ["## Where Tidings stands", "",
                  "| target | goal | measured | met? |", "| --- | --- | --- | --- |"]
        for t in targets:
            met = {True: "yes", False: "**no**", None: DASH}[t["met"]]
            lines.append(f"| {t['name']} | {t['goal']} | {t['measured']} | {met} |")
        lines.append("")
    for scenario in scenarios:
        lines += [f"## {scenario.title}", "", scenario.description, ""]
        heads = [f"vs {scenario.baseline}" if c == "ratio" else COLUMNS[c][0]
                 for c in scenario.columns]
        lines.append("| contender | what it does | " + " | ".join(heads) + " |")
        lines.append("| --- | --- | " + " | ".join("---:" for _ in heads) + " |")
        for summary in scenario.summaries():
            if summary["unavailable"] or summary["error"]:
                why = summary["unavailable"] or f"failed: {summary['error']}"
                cells = [why] + [DASH] * (len(heads) - 1)
            else:
                cells = [COLUMNS[c][1](summary) for c in scenario.columns]
            lines.append(f"| {summary['contender']} | {summary['what']} | "
                         + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- {note}" for note in scenario.notes]
        if scenario.notes:
            lines.append("")
    return "\n".join(lines)


def write(out_dir: Path, stem: str, meta: dict[str, Any], scenarios: Sequence[ScenarioResult],
          targets: Sequence[dict[str, Any]]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / f"{stem}.md"
    data = out_dir / f"{stem}.json"
    markdown.write_text(render_markdown(meta, scenarios, targets))
    data.write_text(json.dumps({
        "meta": meta,
        "targets": list(targets),
        "scenarios": [{"key": s.key, "title": s.title, "description": s.description,
                       "notes": s.notes, "seconds": round(s.seconds, 1),
                       "rows": s.summaries()} for s in scenarios],
    }, indent=2, default=str) + "\n")
    return markdown, data

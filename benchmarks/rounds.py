"""Alternating rounds: A B C D, B C D A, C D A B, … so drift on a shared machine hits
everyone, and no contender always runs right after the same one (a contender that
leaves the broker busy, like raw's burst, would otherwise always slow the next)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import BenchError, Context, progress
from benchmarks.report import Row


@dataclass
class Contender:
    name: str
    what: str
    target: str  # "module:function" run in a child process
    params: Callable[[int], dict[str, Any]]  # per round
    timeout: float = 300


def alternate(ctx: Context, scenario: str, contenders: Sequence[Contender],
              rounds: int) -> list[Row]:
    rows = {c.name: Row(c.name, c.what) for c in contenders}
    for round_no in range(rounds):
        shift = round_no % len(contenders) if contenders else 0
        for contender in [*contenders[shift:], *contenders[:shift]]:
            row = rows[contender.name]
            if row.error is not None:
                continue
            try:
                result = ctx.child(contender.target, contender.params(round_no),
                                   timeout=contender.timeout)
            except BenchError as exc:
                row.error = str(exc)
                progress(f"{scenario} {contender.name}: FAILED {exc}")
                continue
            row.runs.append(result)
            rate = result["msgs"] / result["seconds"] if result.get("seconds") else 0
            progress(f"{scenario} round {round_no + 1}/{rounds} {contender.name}: "
                     f"{rate:,.0f} msgs/s, peak RSS {result.get('peak_rss_mb')} MB")
    return list(rows.values())

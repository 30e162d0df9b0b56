"""Durations as people write them in topology.yaml: ``500ms``, ``10s``, ``1m``, ``2h``, ``1d``."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PATTERN = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")


@dataclass(frozen=True, order=True)
class Duration:
    """A non-negative span of time with a canonical label.

    The label is used in topic names (``orders.inventory.retry.1m``), so ``60s`` and
    ``1m`` must produce the same one: it is the largest unit that divides evenly.
    """

    millis: int

    @property
    def seconds(self) -> float:
        return self.millis / 1000

    @property
    def label(self) -> str:
        if self.millis == 0:
            return "0s"
        for unit in ("d", "h", "m", "s"):
            size = _UNITS_MS[unit]
            if self.millis % size == 0:
                return f"{self.millis // size}{unit}"
        return f"{self.millis}ms"

    def __str__(self) -> str:
        return self.label


def parse_duration(text: object) -> Duration:
    """Parse ``10s``-style text; raises ``ValueError`` with a message fit for a user."""
    if isinstance(text, Duration):
        return text
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"{text!r} is not a duration; write e.g. 500ms, 10s, 1m, 2h or 1d")
    if isinstance(text, int):
        raise ValueError(f"{text} has no unit; write e.g. {text}s or {text}ms")
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; write e.g. 500ms, 10s, 1m, 2h or 1d")
    return Duration(int(match.group(1)) * _UNITS_MS[match.group(2)])

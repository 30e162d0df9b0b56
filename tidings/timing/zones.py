"""Time zone names as topology.yaml writes them (IANA names such as ``Europe/Berlin``)."""

from __future__ import annotations

import difflib
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable time zone, or None."""
    try:
        ZoneInfo(name)
        return None
    except (ZoneInfoNotFoundError, ValueError):
        pass
    close = difflib.get_close_matches(name, _known(), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else " (use an IANA name such as " \
        "Europe/Berlin or UTC)"
    return f"unknown timezone {name!r}{hint}"


@cache
def _known() -> list[str]:
    return sorted(available_timezones())

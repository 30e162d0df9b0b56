"""Placeholders in a schedule's ``data:``: ``{tick}`` and ``{tick_date}``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

TICK_PLACEHOLDER = "{tick}"
DATE_PLACEHOLDER = "{tick_date}"


def tick_data(data: Mapping[str, Any], tick_ms: int, timezone: str) -> dict[str, Any]:
    """``data`` with ``{tick}`` replaced by the tick's time and ``{tick_date}`` by its
    date in ``timezone`` (in string values at any depth)."""
    moment = datetime.fromtimestamp(tick_ms / 1000, UTC)
    local_date = moment.astimezone(ZoneInfo(timezone)).date().isoformat()

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            if value == TICK_PLACEHOLDER:
                return moment
            return value.replace(DATE_PLACEHOLDER, local_date).replace(
                TICK_PLACEHOLDER, moment.isoformat())
        if isinstance(value, Mapping):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    return {key: fill(value) for key, value in data.items()}

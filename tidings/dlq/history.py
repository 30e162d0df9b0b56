"""Redrive headers: attempt reset, the failure kept in a history header (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tidings import headers as h

REDRIVE_HISTORY = "redrive-history"
#: The failure headers a redrive folds into the history and removes.
FOLDED = (h.ATTEMPT, h.ERROR_CLASS, h.ERROR_MESSAGE, h.FAILED_AT, h.NOT_BEFORE)


def history_of(headers: Mapping[str, str]) -> list[dict[str, Any]]:
    """The earlier failures a dead letter's ``redrive-history`` header lists."""
    raw = headers.get(REDRIVE_HISTORY)
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def failure_entry(headers: Mapping[str, str]) -> dict[str, Any]:
    """The failure a dead letter records, as one history entry."""
    try:
        attempt: int | str = int(headers.get(h.ATTEMPT, "1"))
    except ValueError:
        attempt = headers.get(h.ATTEMPT, "")
    return {"attempt": attempt, "error-class": headers.get(h.ERROR_CLASS, ""),
            "error-message": headers.get(h.ERROR_MESSAGE, ""),
            "failed-at": headers.get(h.FAILED_AT, "")}


def redrive_headers(pairs: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A dead letter's headers for its redrive: ``attempt`` back to 1, ``not-before``
    gone, the failure appended to ``redrive-history``; everything else (event-id, the
    original coordinates of the first failure, trace context) kept."""
    pairs = list(pairs)
    text = h.header_dict(pairs)
    history = [*history_of(text), failure_entry(text)]
    kept = [(n, v) for n, v in pairs if n not in FOLDED and n != REDRIVE_HISTORY]
    return [*kept, (h.ATTEMPT, b"1"),
            (REDRIVE_HISTORY, json.dumps(history, separators=(",", ":")).encode())]


def class_matches(error_class: str, wanted: str | None) -> bool:
    """``--error-class`` matches the full class name or its last dotted part."""
    if wanted is None:
        return True
    return error_class == wanted or error_class.rsplit(".", 1)[-1] == wanted

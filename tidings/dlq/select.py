"""Which dead letters an operator means: error class, event type, event ids, key, time.

One selection serves ``dlq show``, ``dlq redrive`` and the console's dead-letter page,
so "these letters" means the same everywhere. The time range is over when a letter
was dead-lettered (its DLQ record's timestamp), ``[since, until)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tidings.dlq.history import class_matches
from tidings.replay.cluster import ReplayError
from tidings.replay.ranges import Bound, check_order, parse_bound


class LetterLike(Protocol):
    """What a selection looks at: a :class:`~tidings.dlq.letters.DeadLetter` or an
    index entry (:class:`~tidings.dlq.index.LetterRef`) alike."""

    @property
    def timestamp_ms(self) -> int: ...

    @property
    def event_id(self) -> str: ...

    @property
    def event_type(self) -> str: ...

    @property
    def error_class(self) -> str: ...

    @property
    def key_text(self) -> str | None: ...


@dataclass(frozen=True)
class LetterFilter:
    """A selection of dead letters; every field left empty selects everything."""

    error_class: str | None = None
    event_type: str | None = None
    event_ids: tuple[str, ...] = ()
    key: str | None = None
    since_ms: int | None = None  # dead-lettered at or after
    until_ms: int | None = None  # dead-lettered before
    since_text: str | None = None
    until_text: str | None = None

    @classmethod
    def parse(cls, *, error_class: str | None = None, event_type: str | None = None,
              event_ids: Iterable[str] = (), key: str | None = None,
              since: str | None = None, until: str | None = None,
              now: datetime | None = None) -> LetterFilter:
        """A filter from the texts a user typed (``--from -2h``); one-line errors."""
        now = now or datetime.now(UTC)
        start = _time_bound(since, "--from", now)
        end = _time_bound(until, "--to", now)
        if start is not None and end is not None:
            check_order(start, end)
        ids = tuple(dict.fromkeys(i.strip() for i in event_ids if i and i.strip()))
        return cls(error_class=_blank(error_class), event_type=_blank(event_type),
                   event_ids=ids, key=key if key else None,
                   since_ms=start.timestamp_ms if start else None,
                   until_ms=end.timestamp_ms if end else None,
                   since_text=since.strip() if since else None,
                   until_text=until.strip() if until else None)

    @property
    def empty(self) -> bool:
        return self == LetterFilter()

    def matches(self, letter: LetterLike) -> bool:
        if not class_matches(letter.error_class, self.error_class):
            return False
        if self.event_type is not None and letter.event_type != self.event_type:
            return False
        if self.event_ids and letter.event_id not in self.event_ids:
            return False
        if self.key is not None and letter.key_text != self.key:
            return False
        if self.since_ms is not None and letter.timestamp_ms < self.since_ms:
            return False
        return self.until_ms is None or letter.timestamp_ms < self.until_ms

    def describe(self) -> str:
        """``error class X, event type Y, ...``; ``every dead letter`` when empty."""
        parts = []
        if self.error_class:
            parts.append(f"error class {self.error_class}")
        if self.event_type:
            parts.append(f"event type {self.event_type}")
        if self.event_ids:
            shown = ", ".join(self.event_ids[:3]) + (" ..." if len(self.event_ids) > 3 else "")
            parts.append(f"event id {shown}" if len(self.event_ids) == 1
                         else f"{len(self.event_ids)} event ids ({shown})")
        if self.key is not None:
            parts.append(f"key {self.key}")
        if self.since_ms is not None or self.until_ms is not None:
            parts.append(f"dead-lettered in [{_shown(self.since_ms, self.since_text, 'the start')}"
                         f", {_shown(self.until_ms, self.until_text, 'now')})")
        return ", ".join(parts) or "every dead letter"

    def signature(self) -> dict[str, Any]:
        """The selection as typed: ``--from -2h`` planned twice is the same selection."""
        data = self.to_json()
        if self.since_text is not None:
            data.pop("since_ms")
        if self.until_text is not None:
            data.pop("until_ms")
        return data

    def to_json(self) -> dict[str, Any]:
        return {"error_class": self.error_class, "event_type": self.event_type,
                "event_ids": list(self.event_ids), "key": self.key,
                "since_ms": self.since_ms, "until_ms": self.until_ms,
                "since_text": self.since_text, "until_text": self.until_text}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LetterFilter:
        return cls(error_class=data.get("error_class"), event_type=data.get("event_type"),
                   event_ids=tuple(data.get("event_ids") or ()), key=data.get("key"),
                   since_ms=data.get("since_ms"), until_ms=data.get("until_ms"),
                   since_text=data.get("since_text"), until_text=data.get("until_text"))


def _shown(moment_ms: int | None, text: str | None, default: str) -> str:
    if moment_ms is None:
        return default
    return Bound(text or "", timestamp_ms=moment_ms).describe()


def _blank(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None


def _time_bound(text: str | None, option: str, now: datetime) -> Bound | None:
    if text is None or not text.strip():
        return None
    bound = parse_bound(text, option, now=now)
    if bound.timestamp_ms is None:
        raise ReplayError(f"{option} {text!r}: dead letters are selected by time; give a "
                          "time (2026-03-14T15:00Z) or a duration before now (-2h)")
    return bound

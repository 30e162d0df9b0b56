"""Cron expressions, evaluated in a time zone, with daylight-saving time handled.

Five fields (``minute hour day-of-month month day-of-week``) as in Vixie cron, or six
with a leading seconds field (as in Spring and Quartz). Each field takes ``*``,
numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists ``a,b``; months and
week days also take names (``JAN``, ``MON``); ``0`` and ``7`` are both Sunday. The
macros ``@yearly``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight`` and
``@hourly`` stand for their usual expressions. As in Vixie cron, when both the day of
the month and the day of the week are restricted, a day matching either one fires.

Daylight-saving time follows ISC cron's rules, which are what people expect from
"every night at 02:30":

* a *fixed-time* schedule (neither its minute nor its hour field starts with ``*``)
  whose local time falls in a gap (the clocks jump forward) fires once, at the first
  instant after the gap; one whose local time occurs twice (the clocks go back)
  fires once, at the first occurrence;
* a *wildcard* schedule (``*/15 * * * *``, ``0 * * * *``) keeps its pace in real
  time: local times that do not exist are skipped, and local times that occur twice
  fire twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {name: index for index, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    start=1)}
_DAYS = {name: index for index, name in enumerate(
    ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
#: (name, lowest, highest, names) of each field, seconds first.
_FIELDS = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
#: How far ahead a schedule is searched for its next time before it counts as never firing
#: (Feb 29 on a Monday recurs within 28 years).
_SEARCH_YEARS = 30
#: Offsets change by at most this much at a transition (real zones: 2 hours at most).
_MAX_SHIFT = timedelta(hours=3)


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message says which field and why."""


def _parse_value(text: str, low: int, high: int, names: dict[str, int] | None,
                 field: str) -> int:
    if names is not None and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        hint = f" (or a name such as {next(iter(names))})" if names else ""
        raise CronError(f"{field} {text!r} is not a number{hint}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field} {value} is out of range {low}-{high}")
    return value


def _parse_field(text: str, low: int, high: int, names: dict[str, int] | None,
                 field: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field} field {text!r} has an empty list item")
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field} step {step_text!r} must be a positive number")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start = _parse_value(first, low, high, names, field)
            end = _parse_value(last, low, high, names, field)
            if start > end:
                raise CronError(f"{field} range {body!r} runs backwards")
        else:
            start = _parse_value(body, low, high, names, field)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; :meth:`next_after` finds when it fires next in a zone."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_restricted: bool
    weekday_restricted: bool
    #: Minute or hour field starts with ``*``: the schedule keeps its pace through DST.
    wildcard: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``; raises :class:`CronError` naming the faulty field."""
        source = text.strip()
        expanded = MACROS.get(source.lower(), source)
        if expanded.startswith("@"):
            raise CronError(f"unknown macro {source!r} (known: {', '.join(MACROS)})")
        parts = expanded.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        elif len(parts) != 6:
            raise CronError(f"cron {source!r} has {len(parts)} fields; write five "
                            "(minute hour day-of-month month day-of-week) or six "
                            "(with seconds first)")
        sets = [_parse_field(part, low, high, names, name)
                for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(day % 7 for day in sets[5])
        expression = cls(
            text=source, seconds=sets[0], minutes=sets[1], hours=sets[2], days=sets[3],
            months=sets[4], weekdays=weekdays,
            day_restricted=not parts[3].startswith("*"),
            weekday_restricted=not parts[5].startswith("*"),
            wildcard=parts[1].startswith("*") or parts[2].startswith("*"),
        )
        if expression._next_wall(datetime(2000, 1, 1)) is None:
            raise CronError(f"cron {source!r} never fires (no such date)")
        return expression

    # -- local wall times --------------------------------------------------------------

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.weekday() + 1) % 7 in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first naive local time at or after ``wall`` that the fields match."""
        if wall.microsecond:
            wall = wall.replace(microsecond=0) + timedelta(seconds=1)
        limit = wall.year + _SEARCH_YEARS
        while wall.year <= limit:
            if wall.month not in self.months:
                following = [m for m in sorted(self.months) if m > wall.month]
                wall = (wall.replace(month=following[0], day=1) if following
                        else wall.replace(year=wall.year + 1, month=min(self.months), day=1))
                wall = wall.replace(hour=0, minute=0, second=0)
                continue
            if not self._day_matches(wall):
                wall = (wall + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if wall.hour not in self.hours:
                later = [h for h in sorted(self.hours) if h > wall.hour]
                if not later:
                    wall = (wall + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                else:
                    wall = wall.replace(hour=later[0], minute=0, second=0)
                continue
            if wall.minute not in self.minutes:
                later = [m for m in sorted(self.minutes) if m > wall.minute]
                if not later:
                    wall = (wall + timedelta(hours=1)).replace(minute=0, second=0)
                else:
                    wall = wall.replace(minute=later[0], second=0)
                continue
            if wall.second not in self.seconds:
                later = [s for s in sorted(self.seconds) if s > wall.second]
                if not later:
                    wall = (wall + timedelta(minutes=1)).replace(second=0)
                else:
                    wall = wall.replace(second=later[0])
                continue
            return wall
        return None

    def _first_wall_after(self, instant: datetime, offset: timedelta) -> datetime | None:
        """The first matching local time, read with ``offset``, strictly after ``instant``."""
        whole = instant.replace(microsecond=0) + timedelta(seconds=1)
        return self._next_wall((whole + offset).replace(tzinfo=None))

    # -- instants ----------------------------------------------------------------------

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """The first instant strictly after ``after`` (aware) at which this fires in
        ``zone``, in UTC; None when it never fires again."""
        after = after.astimezone(UTC)
        offset = _offset(after, zone)
        wall = self._first_wall_after(after, offset)
        if wall is None:
            return None
        candidate = (wall - offset).replace(tzinfo=UTC)
        # Away from a transition, local time maps to instants one to one; near one
        # (around ``after`` or the candidate), work out both sides of it.
        for moment in (after, candidate):
            transition = _transition_near(moment, zone)
            if transition is not None:
                return self._across(after, zone, *transition)
        return candidate

    def _across(self, after: datetime, zone: ZoneInfo, at: datetime, before: timedelta,
                later: timedelta) -> datetime | None:
        """The next instant after ``after`` when the offset changes from ``before`` to
        ``later`` at instant ``at`` (see the module's DST rules)."""
        if after < at:
            wall = self._first_wall_after(after, before)
            if wall is not None and (wall - before).replace(tzinfo=UTC) < at:
                return (wall - before).replace(tzinfo=UTC)
        gap_start = (at + before).replace(tzinfo=None)
        gap_end = (at + later).replace(tzinfo=None)
        if later > before:  # clocks jump forward: local [gap_start, gap_end) never happens
            if not self.wildcard and after < at:
                wall = self._next_wall(gap_start)
                if wall is not None and wall < gap_end:
                    return at
            first_local = gap_end
        else:  # clocks go back: local [gap_end, gap_start) happens twice
            first_local = gap_end if self.wildcard else gap_start
        floor = max(after, at - timedelta(seconds=1))
        start = max(first_local, (floor.replace(microsecond=0) + timedelta(seconds=1)
                                  + later).replace(tzinfo=None))
        wall = self._next_wall(start)
        return None if wall is None else (wall - later).replace(tzinfo=UTC)


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _transition_near(moment: datetime, zone: ZoneInfo
                     ) -> tuple[datetime, timedelta, timedelta] | None:
    """``(instant, offset before, offset after)`` of a change of ``zone``'s offset within a
    few hours of ``moment``, or None."""
    low, high = moment - _MAX_SHIFT, moment + _MAX_SHIFT
    before, after = _offset(low, zone), _offset(high, zone)
    if before == after:
        return None
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if _offset(middle, zone) == before:
            low = middle
        else:
            high = middle
    at = high.replace(microsecond=0)
    if _offset(at, zone) == before:
        at += timedelta(seconds=1)
    return at, before, after

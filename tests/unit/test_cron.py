"""Cron expressions: parsing, and when they fire, through daylight-saving time."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tidings.timing.cron import CronError, CronExpression

BERLIN = ZoneInfo("Europe/Berlin")


def fires(expression: str, start: datetime, count: int, zone: ZoneInfo = BERLIN) -> list[str]:
    """The next ``count`` firing instants after ``start``, as 'UTC / local' text."""
    cron, moment, found = CronExpression.parse(expression), start, []
    for _ in range(count):
        following = cron.next_after(moment, zone)
        assert following is not None
        found.append(f"{following:%m-%d %H:%M}Z/{following.astimezone(zone):%H:%M %Z}")
        moment = following
    return found


@pytest.mark.parametrize(("expression", "message"), [
    ("61 * * * *", "minute 61 is out of range 0-59"),
    ("* * * *", "has 4 fields"),
    ("*/0 * * * *", "step '0' must be a positive number"),
    ("5-1 * * * *", "range '5-1' runs backwards"),
    ("0 0 * FOO *", "month 'FOO' is not a number"),
    ("0 0 30 2 *", "never fires"),
    ("@reboot", "unknown macro"),
])
def test_a_bad_expression_says_which_field_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronExpression.parse(expression)


def test_names_ranges_steps_lists_and_macros() -> None:
    cron = CronExpression.parse("0,30 9-17/4 * JAN-MAR MON-FRI")
    assert cron.minutes == {0, 30} and cron.hours == {9, 13, 17}
    assert cron.months == {1, 2, 3} and cron.weekdays == {1, 2, 3, 4, 5}
    assert CronExpression.parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert CronExpression.parse("@daily").hours == {0}
    assert CronExpression.parse("*/15 * * * * *").seconds == {0, 15, 30, 45}


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Vixie cron: the 13th of the month, or any Friday.
    after = datetime(2026, 11, 1, tzinfo=UTC)
    assert fires("0 12 13 * FRI", after, 3, ZoneInfo("UTC")) == [
        "11-06 12:00Z/12:00 UTC", "11-13 12:00Z/12:00 UTC", "11-20 12:00Z/12:00 UTC"]


def test_seconds_field_and_strictly_after() -> None:
    at = datetime(2026, 6, 1, 12, 0, 10, tzinfo=UTC)
    cron = CronExpression.parse("*/10 * * * * *")
    assert cron.next_after(at, BERLIN) == datetime(2026, 6, 1, 12, 0, 20, tzinfo=UTC)


def test_spring_forward_a_fixed_time_in_the_gap_fires_once_at_the_gap_end() -> None:
    # Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    assert fires("30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=UTC), 4) == [
        "03-28 01:30Z/02:30 CET", "03-29 01:00Z/03:00 CEST",
        "03-30 00:30Z/02:30 CEST", "03-31 00:30Z/02:30 CEST"]


def test_spring_forward_a_wildcard_schedule_keeps_its_pace() -> None:
    # Hourly: the hour that does not exist is skipped, no tick is doubled.
    assert fires("0 * * * *", datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 4) == [
        "03-29 00:00Z/01:00 CET", "03-29 01:00Z/03:00 CEST",
        "03-29 02:00Z/04:00 CEST", "03-29 03:00Z/05:00 CEST"]
    # Every 15 minutes within the hour that is skipped fires nothing there.
    assert fires("*/15 2 * * *", datetime(2026, 3, 28, 0, tzinfo=UTC), 5) == [
        "03-28 01:00Z/02:00 CET", "03-28 01:15Z/02:15 CET", "03-28 01:30Z/02:30 CET",
        "03-28 01:45Z/02:45 CET", "03-30 00:00Z/02:00 CEST"]


def test_fall_back_a_fixed_time_that_occurs_twice_fires_once() -> None:
    # Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    assert fires("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=UTC), 4) == [
        "10-24 00:30Z/02:30 CEST", "10-25 00:30Z/02:30 CEST",
        "10-26 01:30Z/02:30 CET", "10-27 01:30Z/02:30 CET"]


def test_fall_back_a_wildcard_schedule_fires_in_both_hours() -> None:
    assert fires("*/30 * * * *", datetime(2026, 10, 24, 23, tzinfo=UTC), 6) == [
        "10-24 23:30Z/01:30 CEST", "10-25 00:00Z/02:00 CEST", "10-25 00:30Z/02:30 CEST",
        "10-25 01:00Z/02:00 CET", "10-25 01:30Z/02:30 CET", "10-25 02:00Z/03:00 CET"]


def test_from_inside_the_repeated_hour() -> None:
    # Already past the first 02:30 (CEST): a fixed-time schedule waits for the next day.
    inside = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 02:45 CEST
    assert fires("30 2 * * *", inside, 1) == ["10-26 01:30Z/02:30 CET"]
    assert fires("*/30 * * * *", inside, 2) == ["10-25 01:00Z/02:00 CET",
                                                "10-25 01:30Z/02:30 CET"]


def test_a_rare_date_is_found_quickly() -> None:
    # 29 February (the day of the week is unrestricted): the next leap year.
    cron = CronExpression.parse("0 0 29 2 *")
    assert cron.next_after(datetime(2026, 1, 1, tzinfo=UTC), ZoneInfo("UTC")) == \
        datetime(2028, 2, 29, tzinfo=UTC)

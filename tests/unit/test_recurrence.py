"""Which ticks of a recurring schedule are due, per catch_up, and across clock jumps."""

from __future__ import annotations

from datetime import UTC, datetime

from tidings.timing.placeholders import tick_data
from tidings.timing.recurrence import ON_TIME, Cron, Every, due_ticks

MINUTE = 60_000
HOUR = 60 * MINUTE
T0 = int(datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp() * 1000)


def test_every_ticks_at_multiples_of_its_interval() -> None:
    every = Every(10 * MINUTE)
    assert every.next_after(T0) == T0 + 10 * MINUTE
    assert every.next_after(T0 + 1) == T0 + 10 * MINUTE
    assert every.next_after(T0 - 1) == T0


def test_on_time_each_policy_emits_the_one_due_tick() -> None:
    for policy in ("all", "latest", "none"):
        due = due_ticks(Every(5 * MINUTE), T0, T0 + 5 * MINUTE + 200, policy)
        assert due.emit == [T0 + 5 * MINUTE] and due.skipped == 0
        assert due.after == T0 + 5 * MINUTE


def test_after_an_outage_all_emits_every_missed_tick_in_order() -> None:
    due = due_ticks(Every(5 * MINUTE), T0, T0 + HOUR + 1000, "all")
    assert due.emit == [T0 + n * 5 * MINUTE for n in range(1, 13)]
    assert due.after == T0 + HOUR


def test_after_an_outage_latest_emits_the_last_and_skips_the_rest() -> None:
    for recurrence in (Every(5 * MINUTE), Cron.parse("*/5 * * * *")):
        due = due_ticks(recurrence, T0, T0 + HOUR + 1000, "latest")
        assert due.emit == [T0 + HOUR] and due.skipped == 11 and due.after == T0 + HOUR


def test_after_an_outage_none_skips_missed_ticks_but_keeps_an_on_time_one() -> None:
    late = due_ticks(Every(5 * MINUTE), T0, T0 + HOUR + ON_TIME + 1, "none")
    assert late.emit == [] and late.skipped == 12 and late.after == T0 + HOUR
    on_time = due_ticks(Every(5 * MINUTE), T0, T0 + HOUR + 1000, "none")
    assert on_time.emit == [T0 + HOUR] and on_time.skipped == 11


def test_all_catches_up_in_rounds_of_bounded_size() -> None:
    due = due_ticks(Every(1000), T0, T0 + HOUR, "all", limit=100)
    assert len(due.emit) == 100 and due.after == T0 + 100_000
    following = due_ticks(Every(1000), due.after, T0 + HOUR, "all", limit=100)
    assert following.emit[0] == T0 + 101_000


def test_a_very_long_outage_of_a_fast_cron_finds_the_last_tick_without_walking_it_all() -> None:
    # Every second for 30 days is 2.6 million ticks.
    due = due_ticks(Cron.parse("* * * * * *"), T0, T0 + 30 * 24 * HOUR + 500, "latest")
    assert due.emit == [T0 + 30 * 24 * HOUR]


def test_a_clock_jumped_back_emits_nothing_until_it_passes_the_last_tick_again() -> None:
    after = T0 + HOUR
    assert due_ticks(Every(5 * MINUTE), after, T0, "all").emit == []
    assert due_ticks(Every(5 * MINUTE), after, after + 4 * MINUTE, "all").emit == []
    assert due_ticks(Every(5 * MINUTE), after, after + 5 * MINUTE, "all").emit == \
        [after + 5 * MINUTE]


def test_cron_in_a_zone_across_the_fall_back_night() -> None:
    start = int(datetime(2026, 10, 24, 23, 0, tzinfo=UTC).timestamp() * 1000)
    end = int(datetime(2026, 10, 25, 3, 0, tzinfo=UTC).timestamp() * 1000)
    nightly = due_ticks(Cron.parse("30 2 * * *", "Europe/Berlin"), start, end, "all").emit
    assert [datetime.fromtimestamp(t / 1000, UTC).strftime("%H:%M") for t in nightly] == \
        ["00:30"]
    half_hourly = due_ticks(Cron.parse("*/30 * * * *", "Europe/Berlin"), start, end,
                            "all").emit
    assert len(half_hourly) == 8  # 23:30 .. 03:00 UTC: every half hour of real time


def test_tick_placeholders() -> None:
    tick = int(datetime(2026, 11, 1, 23, 30, tzinfo=UTC).timestamp() * 1000)
    data = tick_data({"at": "{tick}", "label": "report {tick_date}", "n": 3,
                      "nested": {"when": "{tick}"}}, tick, "Europe/Berlin")
    assert data["at"] == datetime(2026, 11, 1, 23, 30, tzinfo=UTC)
    assert data["label"] == "report 2026-11-02"  # the date in Berlin
    assert data["n"] == 3 and data["nested"]["when"] == data["at"]

"""Replay ranges, plans, mode choice, throttle and progress: pure logic, no broker."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from tidings.replay.cluster import ReplayError
from tidings.replay.plan import (
    Mode,
    PartitionSpan,
    ReplayPlan,
    choose_mode,
    resolve_bound,
    spans_for,
)
from tidings.replay.progress import Progress, format_progress, format_seconds
from tidings.replay.ranges import check_order, parse_bound
from tidings.replay.throttle import TokenBucket, default_burst, max_sent

NOW = datetime(2026, 3, 14, 15, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


# -- bounds ---------------------------------------------------------------------------

def test_iso_times_with_and_without_zone() -> None:
    assert parse_bound("2026-03-14T14:00:00Z", "--from").timestamp_ms == NOW_MS - 3_600_000
    assert parse_bound("2026-03-14T14:00", "--from").timestamp_ms == NOW_MS - 3_600_000
    assert parse_bound("2026-03-14T16:00+01:00", "--from").timestamp_ms == NOW_MS
    assert parse_bound("2026-03-14", "--from").timestamp_ms == NOW_MS - 15 * 3_600_000


def test_durations_count_back_from_now() -> None:
    assert parse_bound("-2h", "--from", now=NOW).timestamp_ms == NOW_MS - 7_200_000
    assert parse_bound("-30m", "--from", now=NOW).timestamp_ms == NOW_MS - 1_800_000
    assert parse_bound("now", "--to", now=NOW).timestamp_ms == NOW_MS


def test_offsets_per_partition() -> None:
    bound = parse_bound("0:120, 2:7", "--from")
    assert bound.offsets == {0: 120, 2: 7}
    assert not bound.is_time


@pytest.mark.parametrize("text", ["yesterday", "-2x", "0:1,0:2", "12:"])
def test_bad_bounds_are_one_line_errors(text: str) -> None:
    with pytest.raises(ReplayError) as info:
        parse_bound(text, "--from", now=NOW)
    assert "\n" not in str(info.value)
    assert "--from" in str(info.value)


def test_from_after_to_is_refused() -> None:
    with pytest.raises(ReplayError, match="is after --to"):
        check_order(parse_bound("-1h", "--from", now=NOW), parse_bound("-2h", "--to", now=NOW))
    with pytest.raises(ReplayError, match="partition 1"):
        check_order(parse_bound("1:50", "--from"), parse_bound("1:10", "--to"))
    check_order(parse_bound("-2h", "--from", now=NOW), parse_bound("-2h", "--to", now=NOW))


# -- resolving offsets ------------------------------------------------------------------

MARKS = {0: (0, 100), 1: (10, 50), 2: (0, 0)}


def by_time(found: dict[int, int]):  # type: ignore[no-untyped-def]
    return lambda _ms: found


def test_a_moment_resolves_per_partition_and_past_the_end_means_the_end() -> None:
    starts = resolve_bound(parse_bound("-1h", "--from", now=NOW), [0, 1, 2], MARKS,
                           by_time({0: 60, 1: -1, 2: -1}), is_end=False)
    assert starts == {0: 60, 1: 50, 2: 0}


def test_offsets_from_names_partitions_and_to_leaves_others_open() -> None:
    starts = resolve_bound(parse_bound("0:5", "--from"), [0, 1, 2], MARKS, by_time({}),
                           is_end=False)
    assert starts == {0: 5}
    ends = resolve_bound(parse_bound("1:20", "--to"), [0, 1, 2], MARKS, by_time({}),
                         is_end=True)
    assert ends == {0: 100, 1: 20, 2: 0}
    with pytest.raises(ReplayError, match="no partition 7"):
        resolve_bound(parse_bound("7:1", "--from"), [0, 1, 2], MARKS, by_time({}),
                      is_end=False)


def test_spans_are_clamped_to_what_the_log_holds() -> None:
    spans = spans_for({0: 60, 1: 0, 2: 0}, {0: 80, 1: 999, 2: 0}, MARKS)
    assert [(s.partition, s.start, s.end, s.events) for s in spans] == [
        (0, 60, 80, 20), (1, 10, 50, 40), (2, 0, 0, 0)]
    assert [s.end for s in spans_for({0: 60}, None, MARKS)] == [100]
    with pytest.raises(ReplayError, match="partition 0"):
        spans_for({0: 90}, {0: 80}, MARKS)


# -- mode -----------------------------------------------------------------------------

def test_auto_mode_rewinds_only_an_idle_group_with_an_open_range_and_no_reprocess() -> None:
    def mode(**kw):  # type: ignore[no-untyped-def]
        args = {"running": 0, "bounded": False, "reprocess": False, "group": "g", **kw}
        return choose_mode("auto", **args)[0]

    assert mode() is Mode.REWIND
    assert mode(running=2) is Mode.COPY
    assert mode(bounded=True) is Mode.COPY
    assert mode(reprocess=True) is Mode.COPY


@pytest.mark.parametrize(("kw", "why"), [
    ({"running": 1}, "active member"),
    ({"bounded": True}, "cannot stop at --to"),
    ({"reprocess": True}, "reprocess"),
])
def test_rewind_is_refused_with_the_reason(kw: dict[str, object], why: str) -> None:
    args: dict[str, object] = {"running": 0, "bounded": False, "reprocess": False,
                               "group": "g", **kw}
    with pytest.raises(ReplayError, match=why):
        choose_mode("rewind", **args)  # type: ignore[arg-type]


# -- the plan as printed --------------------------------------------------------------

def plan(**kw: object) -> ReplayPlan:
    fields: dict[str, object] = {
        "group": "analytics", "topic": "orders", "mode": Mode.COPY, "reason": "running",
        "spans": [PartitionSpan(0, 10, 30), PartitionSpan(1, 5, 5)], "range_text": "[a, b)",
        "reprocess": False, "replay_id": "r-1", "target": "orders.analytics.replay",
        "other_groups": ["inventory"], **kw}
    return ReplayPlan(**fields)  # type: ignore[arg-type]


def test_a_copy_plan_names_counts_groups_and_idempotency() -> None:
    text = plan().render()
    assert "[10, 30)" in text and "20" in text
    assert "affects: analytics only; not inventory" in text
    assert "skipped (idempotency)" in text
    assert "runs again" in plan(reprocess=True).render()
    assert plan().remaining == 20


def test_a_resumed_plan_counts_only_what_is_left() -> None:
    resumed = plan(spans=[PartitionSpan(0, 10, 30, done=15)], resumed=True)
    assert resumed.remaining == 5
    assert "copied 15" in resumed.render()


def test_rewind_never_moves_a_group_forward() -> None:
    spans = [PartitionSpan(0, 10, 30, committed=30), PartitionSpan(1, 5, 9, committed=2),
             PartitionSpan(2, 0, 4, committed=None)]
    rewind = plan(mode=Mode.REWIND, spans=spans, target=None)
    assert [s.rewinds for s in spans] == [True, False, False]
    assert rewind.remaining == 20
    assert "2 (not moved)" in rewind.render()


def test_an_empty_range_says_so() -> None:
    empty = plan(spans=[PartitionSpan(0, 5, 5)])
    assert empty.empty
    assert "Nothing to replay" in empty.render()


# -- throttle -------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("rate", [1.0, 7.5, 50.0, 1000.0])
def test_the_bucket_never_lets_more_through_than_burst_plus_rate_times_time(rate: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, clock=clock, sleep=clock.sleep)
    for sent in range(1, 2001):
        bucket.take()
        assert sent <= max_sent(rate, clock.now) + 1e-9
    # ... and is not slower than needed: the last event went out when allowed
    assert clock.now == pytest.approx((2000 - default_burst(rate)) / rate)


def test_the_burst_is_a_tenth_of_a_second_at_least_one() -> None:
    assert default_burst(5) == 1
    assert default_burst(500) == 50


# -- progress -------------------------------------------------------------------------

def test_progress_shows_events_rate_and_eta() -> None:
    assert format_progress(120, 480, 3.0) == \
        "[######------------------] 120/480 events  40.0/s  ETA 9s"
    assert format_progress(480, 480, 12.0).endswith("done")
    assert format_seconds(125) == "2m05s"
    assert format_seconds(3720) == "1h02m"


def test_progress_on_a_log_prints_lines_not_carriage_returns() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(3, stream=stream, clock=clock)
    for _ in range(3):
        clock.now += 1
        progress.advance()
    progress.finish()
    assert "\r" not in stream.getvalue()
    assert stream.getvalue().splitlines()[-1].startswith("[" + "#" * 24 + "] 3/3")


def test_partition_shares_parse_and_print_as_ranges() -> None:
    from tidings.replay import ReplayError, parse_partitions, share_text

    assert parse_partitions("0-3,7") == (0, 1, 2, 3, 7)
    assert parse_partitions("5") == (5,)
    assert share_text([0, 1, 2, 3, 7, 9, 10]) == "0-3,7,9-10"
    for bad in ("a", "3-1", "-1", "1,,2"):
        with pytest.raises(ReplayError, match="--partitions"):
            parse_partitions(bad)

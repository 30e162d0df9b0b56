from tidings.consumer.offsets import OffsetTracker


def test_commits_only_up_to_the_lowest_unfinished_event() -> None:
    tracker = OffsetTracker()
    assert tracker.committable is None
    for offset in (10, 11, 12, 13):
        tracker.started(offset)
    tracker.finished(12)
    tracker.finished(13)
    assert tracker.committable == 10, "10 and 11 are still running"
    tracker.finished(10)
    assert tracker.committable == 11
    tracker.finished(11)
    assert tracker.committable == 14
    assert tracker.in_flight == 0


def test_in_order_completion_advances_one_by_one() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.started(offset)
        tracker.finished(offset)
        assert tracker.committable == offset + 1

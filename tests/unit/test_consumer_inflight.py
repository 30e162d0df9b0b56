"""Offsets are committed only up to where every event is finished, whatever order the
workers finish their batches in."""

from tidings.consumer.inflight import InFlight

A, B = ("orders", 0), ("orders", 1)


def test_nothing_is_committable_before_a_unit_is_done() -> None:
    ledger = InFlight()
    ledger.open({A: 11}, events=4, parts=2, now=1.0)
    assert ledger.committable() == {}
    ledger.finished(0)
    assert ledger.committable() == {}, "one of its two worker batches is still running"
    ledger.finished(0)
    assert ledger.committable() == {A: 11}
    assert ledger.events == 0


def test_a_later_unit_done_first_waits_for_the_earlier_one() -> None:
    ledger = InFlight()
    first = ledger.open({A: 10, B: 5}, events=6, parts=1, now=1.0)
    second = ledger.open({A: 20}, events=10, parts=1, now=2.0)
    ledger.finished(second)
    assert ledger.committable() == {}, "offsets 0-9 of A are still in the first unit"
    assert ledger.events == 16 and ledger.oldest_opened() == 1.0
    ledger.finished(first)
    assert ledger.committable() == {A: 20, B: 5}
    assert ledger.oldest_opened() is None


def test_touches_tells_whether_a_partition_still_has_events_out() -> None:
    ledger = InFlight()
    unit = ledger.open({A: 3}, events=3, parts=1, now=0.0)
    assert ledger.touches({A}) and not ledger.touches({B})
    ledger.finished(unit)
    assert not ledger.touches({A})


def test_forgotten_partitions_are_neither_committed_nor_waited_for() -> None:
    ledger = InFlight()
    unit = ledger.open({A: 3, B: 7}, events=5, parts=1, now=0.0)
    ledger.forget({A})
    assert not ledger.touches({A})
    ledger.finished(unit)
    assert ledger.committable() == {B: 7}
    ledger.finished(unit)  # a report for a unit already released changes nothing
    assert ledger.committable() == {B: 7}

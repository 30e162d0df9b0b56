"""Offsets are committed only up to where every event is finished, whatever order the
workers finish their parts in, and however far into a part a worker has got."""

from tidings.consumer.inflight import InFlight

A, B = ("orders", 0), ("orders", 1)


def entries(tp: tuple[str, int], *offsets: int) -> list[tuple[tuple[str, int], int]]:
    return [(tp, o) for o in offsets]


def test_nothing_is_committable_before_the_events_below_are_finished() -> None:
    ledger = InFlight()
    first = ledger.open(entries(A, 10, 12), now=1.0)
    second = ledger.open(entries(A, 11, 13), now=1.0)  # the other worker's share
    assert ledger.committable() == {A: 10}
    ledger.progress(second, 2)
    assert ledger.committable() == {A: 10}, "10 and 12 are still in the first part"
    ledger.progress(first, 1)
    assert ledger.committable() == {A: 12}
    ledger.progress(first, 2)
    assert ledger.committable() == {A: 14}
    assert ledger.events == 0


def test_a_part_finished_halfway_commits_its_finished_prefix() -> None:
    ledger = InFlight()
    part = ledger.open([(A, 0), (B, 0), (A, 1), (B, 1), (A, 2)], now=0.0)
    ledger.progress(part, 3)  # A0, B0, A1 done
    assert ledger.committable() == {A: 2, B: 1}
    assert ledger.events == 2
    ledger.progress(part, 2)  # an older report changes nothing
    assert ledger.committable() == {A: 2, B: 1}
    ledger.progress(part, 5)
    assert ledger.committable() == {A: 3, B: 2}
    assert ledger.oldest_opened() is None


def test_touches_tells_whether_a_partition_still_has_events_out() -> None:
    ledger = InFlight()
    part = ledger.open(entries(A, 3, 4), now=0.0)
    assert ledger.touches({A}) and not ledger.touches({B})
    ledger.progress(part, 2)
    assert not ledger.touches({A})


def test_forgotten_partitions_are_neither_committed_nor_waited_for() -> None:
    ledger = InFlight()
    part = ledger.open([(A, 3), (B, 7)], now=0.0)
    ledger.forget({A})
    assert not ledger.touches({A}) and ledger.events == 1
    ledger.progress(part, 2)
    assert ledger.committable() == {B: 8}
    assert ledger.events == 0

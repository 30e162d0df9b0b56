"""Selecting dead letters and counting copies against events: pure logic, no broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.dlq.index import LetterRef, census
from tidings.dlq.redrive import RedriveFilter
from tidings.dlq.select import LetterFilter
from tidings.errors import TidingsError

NOW = datetime(2026, 3, 14, 15, 0, tzinfo=UTC)
MINUTE = 60_000
NOW_MS = int(NOW.timestamp() * 1000)


def ref(event_id: str, *, minutes_ago: int = 0, error: str = "x.RuntimeError",
        event_type: str = "order.created", key: str | None = "k-1",
        redrives: int = 0, offset: int = 0) -> LetterRef:
    return LetterRef("orders.g.dlq", 0, offset, NOW_MS - minutes_ago * MINUTE, event_id,
                     event_type, error, "boom", key, redrives)


def test_every_field_narrows_the_selection() -> None:
    letters = [ref("a", error="x.OutOfStock"), ref("b", event_type="order.cancelled"),
               ref("c", key="k-2"), ref("d", minutes_ago=90), ref("e")]

    def chosen(**texts: object) -> list[str]:
        select = LetterFilter.parse(now=NOW, **texts)  # type: ignore[arg-type]
        return [r.event_id for r in letters if select.matches(r)]

    assert chosen() == ["a", "b", "c", "d", "e"]
    assert chosen(error_class="OutOfStock") == ["a"]
    assert chosen(event_type="order.cancelled") == ["b"]
    assert chosen(key="k-2") == ["c"]
    assert chosen(event_ids=["d", "e", "d"]) == ["d", "e"]
    assert chosen(since="-1h") == ["a", "b", "c", "e"]
    assert chosen(until="-1h") == ["d"]
    assert chosen(since="2026-03-14T13:00Z", until="2026-03-14T14:00Z") == ["d"]
    assert chosen(error_class="RuntimeError", key="k-1", since="-1h") == ["b", "e"]


def test_a_selection_says_what_it_selects() -> None:
    assert LetterFilter().describe() == "every dead letter"
    text = LetterFilter.parse(error_class="OutOfStock", event_type="order.created",
                              since="-2h", now=NOW).describe()
    assert text.startswith("error class OutOfStock, event type order.created, "
                           "dead-lettered in [2026-03-14T13:00:00Z (-2h), now)")


@pytest.mark.parametrize(("texts", "message"), [
    ({"since": "-1h", "until": "-2h"}, "--from 2026-03-14T14:00:00Z (-1h) is after --to"),
    ({"since": "0:12"}, "--from '0:12': dead letters are selected by time"),
    ({"until": "yesterday"}, "--to 'yesterday' is not a time, a duration or offsets"),
])
def test_bad_selections_are_one_line_errors(texts: dict[str, str], message: str) -> None:
    with pytest.raises(TidingsError) as caught:
        LetterFilter.parse(now=NOW, **texts)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_relative_time_is_the_same_selection_when_planned_again() -> None:
    first = LetterFilter.parse(since="-2h", now=NOW)
    later = LetterFilter.parse(since="-2h", now=datetime(2026, 3, 14, 15, 5, tzinfo=UTC))
    assert first.since_ms != later.since_ms
    assert first.signature() == later.signature()


def test_copies_of_one_event_count_once_as_an_event() -> None:
    letters = [ref("a"), ref("a", offset=1), ref("a", offset=2, error="x.KeyError"),
               ref("b", offset=3)]
    counted = census(letters)
    assert (counted.letters, counted.events) == (4, 2)
    assert counted.by_class == {"x.KeyError": (1, 1), "x.RuntimeError": (3, 2)}


def test_a_redrive_filter_survives_the_ledger_in_old_and_new_form() -> None:
    select = LetterFilter.parse(event_ids=["a"], key="k-1", since="-1h", now=NOW)
    kept = RedriveFilter(select, force=True, max_redrives=5)
    assert RedriveFilter.from_json(kept.to_json()) == kept
    old = RedriveFilter.from_json({"error_class": "KeyError", "force": False,
                                   "max_redrives": 3})
    assert old.select == LetterFilter(error_class="KeyError")
    assert old.verdict(ref("a", error="x.KeyError")) == "redrive"
    assert old.verdict(ref("a", error="x.KeyError", redrives=3)) == "held"
    assert old.verdict(ref("a")) == "other"

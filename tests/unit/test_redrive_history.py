"""Redrive headers and selection: pure logic, no broker."""

from __future__ import annotations

import json

from tidings.dlq.history import REDRIVE_HISTORY, class_matches, history_of, redrive_headers
from tidings.dlq.letters import DeadLetter
from tidings.dlq.redrive import RedriveFilter
from tidings.dlq.select import LetterFilter

DEAD = [
    ("event-id", b"e-1"), ("event-type", b"order.created"), ("traceparent", b"00-ab-cd-01"),
    ("original-topic", b"orders"), ("original-partition", b"2"), ("original-offset", b"41"),
    ("attempt", b"3"), ("error-class", b"RuntimeError"), ("error-message", b"always broken"),
    ("failed-at", b"2026-03-14T15:00:00.000Z"), ("not-before", b"1773500000000"),
]


def as_dict(pairs: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in pairs}


def test_a_redrive_resets_attempt_drops_not_before_and_keeps_the_failure() -> None:
    headers = as_dict(redrive_headers(DEAD))
    assert headers["attempt"] == "1"
    assert "not-before" not in headers
    assert "error-class" not in headers and "failed-at" not in headers
    for kept in ("event-id", "traceparent", "original-topic", "original-offset"):
        assert headers[kept] == as_dict(DEAD)[kept]
    assert json.loads(headers[REDRIVE_HISTORY]) == [{
        "attempt": 3, "error-class": "RuntimeError", "error-message": "always broken",
        "failed-at": "2026-03-14T15:00:00.000Z"}]


def test_a_second_redrive_appends_to_the_history() -> None:
    once = redrive_headers(DEAD)
    failed_again = [(n, v) for n, v in once if n != "attempt"] + [
        ("attempt", b"2"), ("error-class", b"KeyError"), ("error-message", b"'sku'"),
        ("failed-at", b"2026-03-14T16:00:00.000Z")]
    history = history_of(as_dict(redrive_headers(failed_again)))
    assert [entry["error-class"] for entry in history] == ["RuntimeError", "KeyError"]
    assert [entry["attempt"] for entry in history] == [3, 2]
    assert sum(1 for n, _ in redrive_headers(failed_again) if n == REDRIVE_HISTORY) == 1


def test_a_garbled_history_is_treated_as_empty() -> None:
    assert history_of({REDRIVE_HISTORY: "not json"}) == []
    assert history_of({REDRIVE_HISTORY: '{"a": 1}'}) == []


def test_error_class_matches_the_full_name_or_its_last_part() -> None:
    assert class_matches("consumers.inventory.stock.OutOfStock", "OutOfStock")
    assert class_matches("RuntimeError", "RuntimeError")
    assert not class_matches("RuntimeError", "Error")
    assert class_matches("anything", None)


def letter(history: int, error_class: str = "RuntimeError") -> DeadLetter:
    entries = [{"attempt": 1, "error-class": "X"}] * history
    return DeadLetter("orders.g.dlq", 0, 0, 0, None, b"", {
        "error-class": error_class, REDRIVE_HISTORY: json.dumps(entries)})


def test_events_redriven_too_often_are_held_back_unless_forced() -> None:
    selection = RedriveFilter(max_redrives=2)
    assert selection.verdict(letter(1)) == "redrive"
    assert selection.verdict(letter(2)) == "held"
    assert RedriveFilter(max_redrives=2, force=True).verdict(letter(5)) == "redrive"
    assert RedriveFilter(LetterFilter(error_class="KeyError")).verdict(letter(0)) == "other"

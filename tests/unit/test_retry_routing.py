"""Retry tiers: which topic, which attempt, and when an event may be handled again."""

from datetime import UTC, datetime

from tidings.consumer.retry import (
    RetryPolicy,
    RouteKind,
    attempt_of,
    failure_headers,
    not_before,
)
from tidings.durations import parse_duration

POLICY = RetryPolicy("inventory", [parse_duration("10s"), parse_duration("1m")], dlq=True)


def test_each_failure_moves_to_the_next_tier_then_the_dlq() -> None:
    first = POLICY.route("orders", 1, retryable=True, now_ms=1_000)
    second = POLICY.route("orders", 2, retryable=True, now_ms=5_000)
    third = POLICY.route("orders", 3, retryable=True, now_ms=9_000)
    assert (first.kind, first.topic, first.next_attempt, first.not_before_ms) == (
        RouteKind.RETRY, "orders.inventory.retry.10s", 2, 11_000)
    assert (second.topic, second.next_attempt, second.not_before_ms) == (
        "orders.inventory.retry.1m", 3, 65_000)
    assert (third.kind, third.topic) == (RouteKind.DEAD_LETTER, "orders.inventory.dlq")


def test_non_retryable_errors_skip_the_tiers() -> None:
    route = POLICY.route("orders", 1, retryable=False)
    assert (route.kind, route.topic) == (RouteKind.DEAD_LETTER, "orders.inventory.dlq")


def test_without_a_dlq_the_last_failure_is_dropped() -> None:
    policy = RetryPolicy("analytics", [], dlq=False)
    assert policy.route("orders", 1, retryable=True).kind is RouteKind.DROP


def test_failure_headers_keep_the_first_coordinates_and_the_event_headers() -> None:
    route = POLICY.route("orders", 2, retryable=True, now_ms=0)
    original = {"event-id": "e-1", "event-type": "order.created", "attempt": "2",
                "original-topic": "orders", "original-partition": "3",
                "original-offset": "41", "not-before": "1"}
    headers = dict((k, v.decode()) for k, v in failure_headers(
        original, route=route, topic="orders.inventory.retry.10s", partition=3, offset=7,
        error=ValueError("stock service timed out"),
        now=datetime(2026, 11, 23, tzinfo=UTC)))
    assert headers["event-id"] == "e-1"
    assert headers["original-topic"] == "orders"
    assert headers["original-offset"] == "41"
    assert headers["attempt"] == "3"
    assert headers["error-class"] == "ValueError"
    assert headers["error-message"] == "stock service timed out"
    assert headers["failed-at"] == "2026-11-23T00:00:00.000Z"
    assert headers["not-before"] == str(60_000)
    assert attempt_of(headers) == 3 and not_before(headers) == 60_000


def test_headers_of_a_first_delivery_read_as_attempt_one() -> None:
    assert attempt_of({}) == 1 and attempt_of({"attempt": "junk"}) == 1
    assert not_before({}) is None

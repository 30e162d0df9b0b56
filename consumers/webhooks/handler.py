"""The webhooks consumer group: fan events out to endpoints, then deliver each one.

Two kinds of events reach :func:`handle`:

* a subscribed event (``order.status_changed``, ``report.requested``, ...): for each
  endpoint that wants its type, and for the ``callback_url`` it carries if any, a
  ``webhook.requested`` is staged (the group's outbox, this transaction). Its
  ``webhook-id`` is derived from (endpoint, event id) and its JSON body fixed here,
  so every attempt sends the same bytes under the same id;
* a ``webhook.requested``: one signed POST (Standard Webhooks). A 2xx records the
  delivery in this transaction. Anything else raises, and the event moves through
  the group's retry tiers, then to the DLQ (``tidings dlq redrive --group webhooks``).

Exactly once in effect: a delivery recorded as done is never sent again; the one
gap is a crash between the receiver's 2xx and the commit, after which the same
``webhook-id`` is sent again, and receivers deduplicate on it (as the standard asks).

An endpoint that is down is not hammered: its circuit opens (see :mod:`.breaker`), and
its deliveries are postponed through the scheduler (``ctx.publish(..., delay=...)``)
without spending their retry tiers, until a trial succeeds.

The group declares ``transaction: event``: an HTTP call cannot be rolled back, so a
crash redoes at most the one delivery in flight. Attempts are logged per endpoint
by a writer thread of their own (:class:`AttemptLog`), so a failed attempt stays in
the log when the handler's transaction rolls back.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx

from consumers.webhooks import store
from consumers.webhooks.breaker import CircuitBreakers
from consumers.webhooks.settings import WebhookSettings
from consumers.webhooks.signing import signed_headers
from schemas import WebhookRequested
from tidings.consumer.context import HandlerContext, NonRetryableError
from tidings.db import Database, transaction

_NAMESPACE = uuid.UUID("a7d3c1c2-9f0e-4f55-8f76-0c4c6f3b1e21")
_local = threading.local()


class WebhookFailed(Exception):
    """An attempt got no 2xx: retried through the group's tiers."""


class CircuitOpenTooLong(NonRetryableError):
    """An endpoint stayed down through every postponement: dead-lettered."""


def setup(connection: Any, database: Database) -> None:
    """Create the webhook tables and the callbacks endpoint."""
    store.create_tables(connection, database)


@cache
def settings() -> WebhookSettings:
    return WebhookSettings()


@cache
def breakers() -> CircuitBreakers:
    chosen = settings()
    return CircuitBreakers(threshold=chosen.breaker_threshold, cooldown=chosen.breaker_cooldown,
                           max_cooldown=chosen.breaker_max_cooldown)


def webhook_id(endpoint_id: str, event_id: str) -> str:
    return "msg_" + uuid.uuid5(_NAMESPACE, f"{endpoint_id}/{event_id}").hex


def handle(event: Any, ctx: HandlerContext) -> None:
    if isinstance(event, WebhookRequested):
        deliver(event, ctx)
    else:
        fan_out(event, ctx)


# -- fan-out ---------------------------------------------------------------------------


def body_of(event: Any, ctx: HandlerContext) -> tuple[str, dict[str, Any]]:
    """The Standard Webhooks body of an event (type, timestamp, data) and its data."""
    data = event.model_dump(mode="json") if hasattr(event, "model_dump") else dict(event)
    body = {"type": ctx.event_type, "timestamp": ctx.headers.get("occurred-at"),
            "data": data}
    return json.dumps(body, separators=(",", ":"), default=str), data


def fan_out(event: Any, ctx: HandlerContext) -> None:
    payload, data = body_of(event, ctx)
    targets = [(endpoint.id, "") for endpoint in store.endpoints(ctx.database, ctx.db)
               if endpoint.id != store.CALLBACKS and endpoint.wants(ctx.event_type)]
    callback = data.get("callback_url")
    if isinstance(callback, str) and callback:
        targets.append((store.CALLBACKS, callback))
    now = datetime.now(UTC)
    for endpoint_id, url in targets:
        ctx.publish(WebhookRequested(
            webhook_id=webhook_id(endpoint_id, ctx.event_id), endpoint_id=endpoint_id,
            url=url, source_type=ctx.event_type, source_event_id=ctx.event_id,
            payload=payload, requested_at=now))


# -- delivery --------------------------------------------------------------------------


def _client() -> httpx.Client:
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(timeout=settings().timeout, follow_redirects=False)
        _local.client = client
    return client


class AttemptLog:
    """Writes the delivery log from a thread of its own, so an attempt is logged even
    when the handler's transaction rolls back (a failed attempt is one that does), and
    without the handler's thread waiting on its own open transaction (SQLite has one
    writer at a time)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queue: queue.Queue[store.Attempt] = queue.Queue()
        threading.Thread(target=self._write, name="webhooks-attempt-log", daemon=True).start()

    def add(self, attempt: store.Attempt) -> None:
        self._queue.put(attempt)

    def _write(self) -> None:
        connection = self.database.connect()
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            try:
                with transaction(connection):
                    for attempt in batch:
                        store.log_attempt(self.database, connection, attempt)
            except Exception:  # the log is informational: never fail a delivery for it
                logging.getLogger("tidings.handler").exception("webhook log not written")

    def flushed(self) -> bool:
        return self._queue.empty()


_logs: dict[str, AttemptLog] = {}
_logs_lock = threading.Lock()


def attempt_log(database: Database) -> AttemptLog:
    with _logs_lock:
        if database.url not in _logs:
            _logs[database.url] = AttemptLog(database)
        return _logs[database.url]


def deliver(request: WebhookRequested, ctx: HandlerContext) -> None:
    database, connection = ctx.database, ctx.db
    if store.delivered(database, connection, request.webhook_id):
        ctx.log.info("webhook %s was delivered already", request.webhook_id)
        return
    endpoint = store.endpoint(database, connection, request.endpoint_id)
    log = attempt_log(database)

    def record(outcome: str, status: int | None = None, error: str | None = None,
               took: float = 0.0) -> None:
        log.add(store.Attempt(request.endpoint_id, request.webhook_id, request.source_type,
                              ctx.attempt, outcome, status, error, int(took * 1000),
                              store.now_ms()))

    if endpoint is None or not endpoint.enabled or not (request.url or endpoint.url):
        record("dropped", error="the endpoint was removed or disabled")
        return
    wait = breakers().check(endpoint.id)
    if wait is not None:
        postpone(request, ctx, wait)
        record("deferred", error=f"circuit open; next try in {wait:.1f}s")
        return
    body = request.payload.encode()
    began = time.monotonic()
    try:
        response = _client().post(request.url or str(endpoint.url), content=body,
                                  headers=signed_headers(endpoint.secret, request.webhook_id,
                                                         body))
        status: int | None = response.status_code
        error = None if 200 <= response.status_code < 300 else \
            f"HTTP {response.status_code}: {response.text[:200]}"
    except httpx.HTTPError as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"
    took = time.monotonic() - began
    if error is None:
        breakers().succeeded(endpoint.id)
        store.record_delivered(database, connection, endpoint.id, request.webhook_id)
        record("delivered", status, took=took)
        return
    record("failed", status, error, took)
    if breakers().failed(endpoint.id):
        # The endpoint is down, not this delivery: postpone it without using a tier.
        postpone(request, ctx, breakers().check(endpoint.id) or settings().breaker_cooldown)
        return
    raise WebhookFailed(f"{endpoint.id}: {error}")


def postpone(request: WebhookRequested, ctx: HandlerContext, wait: float) -> None:
    """Deliver ``request`` again in ``wait`` seconds, through the scheduler."""
    if request.deferrals >= settings().max_deferrals:
        raise CircuitOpenTooLong(f"{request.endpoint_id} stayed unavailable through "
                                 f"{request.deferrals} postponements of {request.webhook_id}")
    later = request.model_copy(update={"deferrals": request.deferrals + 1})
    ctx.publish(later, delay=timedelta(seconds=wait),
                schedule_id=f"{request.webhook_id}.{later.deferrals}")

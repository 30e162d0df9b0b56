"""What a handler receives besides its event: identity, attempt, and a transaction.

Handlers are plain functions::

    def handle(event: OrderCreated, ctx: HandlerContext) -> None: ...
    def handle_batch(events: list[Delivered], ctx: BatchContext) -> None: ...

``ctx.db`` is a connection to the group's own database with a transaction open.
The runtime records the event's idempotency key in that same transaction and
commits it after the handler returns, so the handler's database effects and
"this event is done" are one atomic fact. Follow-up events staged with
``ctx.publish`` join that transaction too (through the group's outbox).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tidings.db import Database
from tidings.headers import CORRELATION_ID, REPLY_TO

if TYPE_CHECKING:
    from tidings.codec.events import Event


class NonRetryableError(Exception):
    """Raise (or subclass) for failures a retry cannot fix: the event goes to the DLQ at once."""


class NotARequest(NonRetryableError):
    """``ctx.reply`` for an event that was not sent as a request: a retry cannot fix it."""


def _require_request(meta: EventMeta) -> Mapping[str, str]:
    if not meta.headers.get(CORRELATION_ID) or not meta.headers.get(REPLY_TO):
        raise NotARequest(f"event {meta.event_id} ({meta.event_type}) was not sent as a "
                          f"request (it has no {CORRELATION_ID} and {REPLY_TO} headers), "
                          "so it cannot be replied to; use ctx.publish")
    return meta.headers


@dataclass(slots=True)
class EventMeta:
    """Where an event came from and what it is (treat it as read-only)."""

    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Mapping[str, str]
    #: 1 on first delivery; n on the (n-1)-th retry.
    attempt: int = 1
    #: The ``--reprocess`` replay this delivery belongs to, or None for live delivery
    #: (and plain replays). Its claim is scoped to that replay: the handler runs once
    #: more for the replay, exactly once.
    reprocess_id: str | None = None


@dataclass(slots=True)
class Delivered:
    """One event of a batch with its metadata."""

    event: Event
    meta: EventMeta


@dataclass(slots=True)
class HandlerContext:
    """The context of one event's handling (see module docs)."""

    group: str
    meta: EventMeta
    db: Any
    database: Database
    #: Stages an event in the group's outbox: ``stage(event, **options)`` (see publish).
    stage: Callable[..., str] = field(repr=False)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("tidings.handler"))

    @property
    def event_id(self) -> str:
        return self.meta.event_id

    @property
    def event_type(self) -> str:
        return self.meta.event_type

    @property
    def headers(self) -> Mapping[str, str]:
        return self.meta.headers

    @property
    def attempt(self) -> int:
        return self.meta.attempt

    def sql(self, statement: str) -> str:
        """``statement`` with ``?`` placeholders in the group database's style."""
        return self.database.sql(statement)

    def publish(self, event: Event, *, delay: timedelta | None = None,
                deliver_at: datetime | None = None, schedule_id: str | None = None) -> str:
        """Stage a follow-up event in this transaction; it is sent after commit.

        Returns its event id. The group must be declared as a producer of the event.
        ``delay=`` or ``deliver_at=`` have the scheduler deliver it later ("remind in
        24 h"); ``schedule_id=`` names it for :meth:`cancel` (default: its event id).
        """
        if delay is None and deliver_at is None and schedule_id is None:
            return self.stage(event)
        return self.stage(event, delay=delay, deliver_at=deliver_at, schedule_id=schedule_id)

    def cancel(self, schedule_id: str) -> None:
        """Cancel what is scheduled under ``schedule_id``, once this transaction commits."""
        self.stage(None, cancel=schedule_id)

    def reply(self, event: Event) -> str:
        """Answer the request being handled with ``event``, in this transaction: it goes
        to the requesting instance (its ``reply-to``) with the request's
        ``correlation-id``. Raises :class:`NotARequest` (dead-lettered) when the event
        was not sent as a request."""
        return self.stage(event, reply_to=_require_request(self.meta))


@dataclass(slots=True)
class BatchContext:
    """The context of one batch; the whole batch is one transaction."""

    group: str
    db: Any
    database: Database
    items: Sequence[Delivered]
    stage: Callable[..., str] = field(repr=False)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("tidings.handler"))

    def sql(self, statement: str) -> str:
        return self.database.sql(statement)

    def publish(self, event: Event, *, delay: timedelta | None = None,
                deliver_at: datetime | None = None, schedule_id: str | None = None) -> str:
        """As :meth:`HandlerContext.publish`."""
        if delay is None and deliver_at is None and schedule_id is None:
            return self.stage(event)
        return self.stage(event, delay=delay, deliver_at=deliver_at, schedule_id=schedule_id)

    def reply(self, to: Delivered, event: Event) -> str:
        """Answer the request ``to`` (one of :attr:`items`) with ``event``."""
        return self.stage(event, reply_to=_require_request(to.meta))

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
from typing import TYPE_CHECKING, Any

from tidings.db import Database

if TYPE_CHECKING:
    from tidings.codec.events import Event


class NonRetryableError(Exception):
    """Raise (or subclass) for failures a retry cannot fix: the event goes to the DLQ at once."""


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
    stage: Callable[[Event], str] = field(repr=False)
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

    def publish(self, event: Event) -> str:
        """Stage a follow-up event in this transaction; it is sent after commit.

        Returns its event id. The group must be declared as a producer of the event.
        """
        return self.stage(event)


@dataclass(slots=True)
class BatchContext:
    """The context of one batch; the whole batch is one transaction."""

    group: str
    db: Any
    database: Database
    items: Sequence[Delivered]
    stage: Callable[[Event], str] = field(repr=False)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("tidings.handler"))

    def sql(self, statement: str) -> str:
        return self.database.sql(statement)

    def publish(self, event: Event) -> str:
        return self.stage(event)

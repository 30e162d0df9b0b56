"""Send each order's confirmation once, and remember it in the group's database.

The send is not part of the database transaction, and cannot be: SMTP has no
two-phase commit. The order is check -> send -> record, and the record commits with
the runtime's idempotency key. So:

* a failed send records nothing, and the event is retried;
* a redelivered event whose mail is recorded sends nothing (checked here, not only
  by the runtime's dedup);
* the one gap: the server accepted the mail and the process dies (or the commit
  fails) before the commit. The event is redelivered and the mail is sent a second
  time, with the same ``Message-ID`` (``<event-id@tidings>``), so the copy is
  recognisable as a duplicate by the receiving side. That is at-least-once
  delivery of mail, as narrow as it can be made, not exactly-once.
"""

from __future__ import annotations

import time
from typing import Any

from consumers.email.render import message_id_for, render_confirmation, render_reminder
from consumers.email.settings import EmailSettings
from consumers.email.smtp import send
from schemas import OrderCreated, OrderReminder
from tidings.codec.events import Event
from tidings.consumer.context import HandlerContext, NonRetryableError
from tidings.db import Database

TABLE = """CREATE TABLE IF NOT EXISTS email_sent (
    event_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sent_at_ms BIGINT NOT NULL
)"""


class UnexpectedEvent(NonRetryableError):
    """An event type email does not subscribe to: topology and handler disagree."""


def setup(connection: Any, database: Database) -> None:
    """Create the table of sent mails if it is missing."""
    connection.execute(TABLE)


def handle(event: Event, ctx: HandlerContext) -> None:
    """Mail the order confirmation of an ``order.created`` to its customer, and the
    reminder of an ``order.reminder`` (scheduled: it arrives when it is due)."""
    if not isinstance(event, OrderCreated | OrderReminder):
        raise UnexpectedEvent(f"email does not handle {event.event_type!r} events")
    if already_sent(ctx.database, ctx.db, ctx.event_id):
        ctx.log.info("mail for event %s was sent already", ctx.event_id)
        return
    settings = EmailSettings()
    if isinstance(event, OrderReminder):
        message = render_reminder(event, sender=settings.sender, event_id=ctx.event_id)
    else:
        message = render_confirmation(event, sender=settings.sender, event_id=ctx.event_id)
    send(message, settings)
    ctx.db.execute(
        ctx.sql(
            "INSERT INTO email_sent (event_id, order_id, recipient, message_id, sent_at_ms) "
            "VALUES (?, ?, ?, ?, ?)"
        ),
        (ctx.event_id, event.order_id, event.customer_email, message_id_for(ctx.event_id),
         int(time.time() * 1000)),
    )


def already_sent(database: Database, connection: Any, event_id: str) -> bool:
    """Whether the mail caused by ``event_id`` is recorded as sent."""
    row = connection.execute(
        database.sql("SELECT 1 FROM email_sent WHERE event_id = ?"), (event_id,)
    ).fetchone()
    return row is not None

"""The analytics batch handler: fold the batch in memory, then one upsert per table.

Analytics adds; it does not look up. So it is only as idempotent as the runtime
makes it: the batch's idempotency keys commit in the same transaction as these
totals, and the runtime drops events already recorded before the batch arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consumers.analytics import store
from consumers.analytics.aggregate import totals_of
from tidings.codec.events import Event
from tidings.consumer.context import BatchContext, Delivered
from tidings.db import Database


def setup(connection: Any, database: Database) -> None:
    """Create the analytics tables if they are missing."""
    store.create_tables(connection)


def handle_batch(events: Sequence[Event | Delivered], ctx: BatchContext) -> None:
    """Add the batch's orders, revenue, SKU sales and cancellations to the totals."""
    totals = totals_of(events)
    if totals.ignored:
        ctx.log.warning("analytics ignored %d events it does not count", totals.ignored)
    store.add_totals(ctx.database, ctx.db, totals)

"""The transactional outbox: events written with the service's own state, relayed later.

A service stages an event in the same database transaction as the state change it
describes, so either both happen or neither does. A relay publishes staged rows in
order and marks them sent afterwards; a relay killed between the two republishes
the row on restart — with the same ``event-id``, which consumers deduplicate.

On PostgreSQL several relays may share one table (one per service replica): each
batch is relayed inside a transaction holding an advisory lock, so one relay at a
time publishes, in order, and a second relay waits instead of sending the same
rows again. A relay that dies mid-batch loses its connection, its transaction
rolls back and the lock goes with it; the next relay republishes that batch.

On SQLite, relays sharing a file (a service and a consumer group that publishes into
the same database, such as the shop's order service and order-status) take turns by
a lease: one row names the relay that may publish and until when; it renews the
lease every batch and gives it up when it stops. A relay killed outright holds it
until it expires (:data:`_LEASE_MS`), then another one takes over.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tidings import tracing
from tidings.db import Database, transaction
from tidings.producer.metrics import ProducerMetrics
from tidings.producer.prepare import EventPreparer, PreparedEvent
from tidings.producer.reliable import Delivery, DeliveryFailed, ReliableProducer

if TYPE_CHECKING:
    from tidings.codec.events import Event

log = logging.getLogger("tidings.producer.outbox")

TABLE = "tidings_outbox"
_SCHEMA = {
    "sqlite": f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            event_type TEXT NOT NULL,
            topic TEXT NOT NULL,
            msg_key BLOB,
            msg_value BLOB NOT NULL,
            headers TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            sent_at_ms INTEGER,
            msg_partition INTEGER
        )""",
    "postgresql": f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            id BIGSERIAL PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            event_type TEXT NOT NULL,
            topic TEXT NOT NULL,
            msg_key BYTEA,
            msg_value BYTEA NOT NULL,
            headers TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            sent_at_ms BIGINT,
            msg_partition INTEGER
        )""",
}
_PENDING_INDEX = (f"CREATE INDEX IF NOT EXISTS {TABLE}_pending ON {TABLE} (id) "
                  "WHERE sent_at_ms IS NULL")
#: SQLite: which relay may publish, and until when (epoch ms).
_LEASE_TABLE = f"{TABLE}_relay"
_LEASE_MS = 15_000
# PostgreSQL advisory lock keys (any bigint, the same in every process using the table).
_SCHEMA_LOCK = 0x7464_6E67_0001  # CREATE ... IF NOT EXISTS races between connections
_RELAY_LOCK = 0x7464_6E67_0002   # one relay publishes a batch at a time


def _now_ms() -> int:
    return int(time.time() * 1000)


def _process_alive(holder: str) -> bool:
    """Whether the process named in a relay lease (``<pid>-...``) still runs here."""
    try:
        pid = int(holder.split("-", 1)[0])
    except ValueError:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_outbox_table(database: Database, connection: Any) -> None:
    """Create the outbox table if it is missing (idempotent)."""
    with transaction(connection):
        if database.dialect == "postgresql":
            # Two connections running CREATE TABLE IF NOT EXISTS at once can both
            # decide it is missing; one then fails on a duplicate key in pg_type.
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        connection.execute(_SCHEMA[database.dialect])
        connection.execute(_PENDING_INDEX)
        _add_partition_column(database, connection)
        if database.dialect == "sqlite":
            connection.execute(f"CREATE TABLE IF NOT EXISTS {_LEASE_TABLE} (id INTEGER "
                               "PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, "
                               "until_ms INTEGER NOT NULL)")


def _add_partition_column(database: Database, connection: Any) -> None:
    """Tables made before replies had a partition get the column (NULL: by key)."""
    if database.dialect == "postgresql":
        connection.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS msg_partition "
                           "INTEGER")
        return
    columns = {row[1] for row in connection.execute(f"PRAGMA table_info({TABLE})")}
    if "msg_partition" not in columns:
        connection.execute(f"ALTER TABLE {TABLE} ADD COLUMN msg_partition INTEGER")


class Outbox:
    """Stages events in the service's database, inside the caller's transaction."""

    def __init__(self, database: Database, preparer: EventPreparer) -> None:
        self.database = database
        self.preparer = preparer

    def ensure_table(self, connection: Any) -> None:
        ensure_outbox_table(self.database, connection)

    def stage(self, connection: Any, event: Event, *, event_id: str | None = None,
              deliver_at: datetime | None = None, delay: timedelta | None = None,
              schedule_id: str | None = None,
              reply_to: Mapping[str, str] | None = None) -> str:
        """Encode ``event`` and insert it on ``connection`` (commit is the caller's).

        Returns the event id, which stays the same however often the row is relayed.
        ``delay=`` / ``deliver_at=`` (and ``schedule_id=``, default: the event id)
        schedule it (see :mod:`tidings.producer.scheduled`); ``reply_to=`` (a request's
        headers) sends it as the reply to that request (see :mod:`tidings.producer.replies`).
        """
        prepared = self.preparer.prepare(event, event_id=event_id)
        partition = None
        if reply_to is not None:
            from tidings.producer.replies import address_reply

            prepared, partition = address_reply(prepared, reply_to, self.preparer.topology)
        elif deliver_at is not None or delay is not None or schedule_id is not None:
            from tidings.producer.scheduled import schedule

            prepared, _, _ = schedule(prepared, self.preparer.topology, deliver_at=deliver_at,
                                      delay=delay, schedule_id=schedule_id)
        self.stage_prepared(connection, prepared, partition=partition)
        return prepared.event_id

    def stage_cancel(self, connection: Any, schedule_id: str) -> None:
        """Cancel what is scheduled under ``schedule_id``, once this transaction commits."""
        from tidings.producer.scheduled import cancellation_event

        self.stage_prepared(connection, cancellation_event(
            self.preparer.topology, schedule_id, by=self.preparer.service))

    def stage_prepared(self, connection: Any, prepared: PreparedEvent,
                       partition: int | None = None) -> None:
        headers = json.dumps([[name, value.decode()] for name, value in prepared.headers])
        connection.execute(
            self.database.sql(
                f"INSERT INTO {TABLE} (event_id, event_type, topic, msg_key, msg_value, "
                "headers, created_at_ms, msg_partition) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            (prepared.event_id, prepared.event_type, prepared.topic, prepared.key,
             prepared.value, headers, _now_ms(), partition),
        )
        if prepared.span is not None:  # staged: the relay sends it after the commit
            tracing.end_publish(prepared.span, prepared.event_id)


def stage_with(outbox: Outbox, connection: Any, event: Any, options: dict[str, Any]) -> str:
    """What a handler context's ``stage(event, **options)`` does: ``cancel=ID`` stages a
    cancellation, anything else goes to :meth:`Outbox.stage`."""
    cancel = options.pop("cancel", None)
    if cancel is not None:
        outbox.stage_cancel(connection, cancel)
        return str(cancel)
    return outbox.stage(connection, event, **options)


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    sent: int
    oldest_pending_ms: int | None


def read_status(connection: Any) -> OutboxStatus:
    """How many rows wait to be relayed, and since when."""
    pending, oldest = connection.execute(
        f"SELECT COUNT(*), MIN(created_at_ms) FROM {TABLE} WHERE sent_at_ms IS NULL"
    ).fetchone()
    sent = connection.execute(
        f"SELECT COUNT(*) FROM {TABLE} WHERE sent_at_ms IS NOT NULL"
    ).fetchone()[0]
    return OutboxStatus(int(pending), int(sent), oldest)


class OutboxRelay:
    """Publishes staged rows in insertion order and marks them sent once delivered.

    With ``metrics`` it counts what it relays, and reads how many rows wait (and since
    when) at most every ``status_interval`` seconds.
    """

    def __init__(
        self,
        database: Database,
        producer: ReliableProducer,
        *,
        batch_size: int = 500,
        idle_wait: float = 0.2,
        keep_sent_for: float = 24 * 3600,
        metrics: ProducerMetrics | None = None,
        status_interval: float = 1.0,
    ) -> None:
        self.database = database
        self.producer = producer
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.keep_sent_ms = int(keep_sent_for * 1000)
        self._connection = database.connect()
        ensure_outbox_table(database, self._connection)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.relayed = 0
        self._name = f"{os.getpid()}-{id(self):x}"
        self.metrics = metrics
        self._gauges = metrics.watch_outbox() if metrics is not None else None
        self.status_interval = status_interval
        self._status_at = 0.0

    def relay_once(self) -> int:
        """Publish one batch of pending rows; returns how many were delivered.

        On PostgreSQL this returns 0 without reading anything while another relay
        holds the relay lock (it is publishing a batch of the same table).
        """
        if self.database.dialect == "postgresql":
            with transaction(self._connection):
                locked = self._connection.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (_RELAY_LOCK,)).fetchone()[0]
                if not locked:
                    return 0
                selected, delivered, failure = self._relay_batch()
        else:
            if not self._hold_lease():
                return 0
            selected, delivered, failure = self._relay_batch()
        self.relayed += delivered
        if failure is not None:
            raise DeliveryFailed(f"outbox relay: {selected - delivered} row(s) stay "
                                 f"pending: {failure}")
        return delivered

    def _hold_lease(self) -> bool:
        """SQLite: take or renew the relay lease; False while another relay holds it.

        A SQLite file is one machine's, so a holder whose process is gone (killed
        outright) is known dead at once, and its lease is taken over without waiting."""
        now = _now_ms()
        with transaction(self._connection):
            row = self._connection.execute(
                f"SELECT holder, until_ms FROM {_LEASE_TABLE} WHERE id = 1").fetchone()
            if row is not None and row[0] != self._name and row[1] >= now \
                    and _process_alive(row[0]):
                return False
            self._connection.execute(
                f"INSERT INTO {_LEASE_TABLE} (id, holder, until_ms) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET holder = excluded.holder, "
                "until_ms = excluded.until_ms", (self._name, now + _LEASE_MS))
        return True

    def _release_lease(self) -> None:
        if self.database.dialect != "sqlite":
            return
        with transaction(self._connection):
            self._connection.execute(f"DELETE FROM {_LEASE_TABLE} WHERE holder = ?",
                                     (self._name,))

    def _relay_batch(self) -> tuple[int, int, BaseException | None]:
        """Send pending rows and mark the delivered ones: (selected, delivered, failure)."""
        rows = self._connection.execute(
            self.database.sql(
                f"SELECT id, event_id, topic, msg_key, msg_value, headers, msg_partition, "
                "event_type "
                f"FROM {TABLE} "
                "WHERE sent_at_ms IS NULL ORDER BY id LIMIT ?"
            ),
            (self.batch_size,),
        ).fetchall()
        if not rows:
            return 0, 0, None
        # One batch of reports, not a future per row; sent in id order, which the
        # idempotent producer keeps per partition. A reply names its partition (the
        # requesting instance's), so it goes on its own (see tidings.producer.replies).
        began = time.perf_counter()
        plain = [row for row in rows if row[6] is None]
        batch = self.producer.send_batch([
            (row[2], bytes(row[4]), bytes(row[3]) if row[3] is not None else None,
             [(n, v.encode()) for n, v in json.loads(row[5])], row[1])
            for row in plain
        ])
        addressed = {row[0]: self.producer.send(
            row[2], bytes(row[4]), key=bytes(row[3]) if row[3] is not None else None,
            headers=[(n, v.encode()) for n, v in json.loads(row[5])], event_id=row[1],
            partition=row[6]) for row in rows if row[6] is not None}
        batch.wait(timeout=self.producer.delivery_timeout + 5)
        outcomes: dict[int, Delivery | DeliveryFailed | None] = dict(
            zip((row[0] for row in plain), list(batch.results), strict=True))
        for row_id, future in addressed.items():
            try:
                outcomes[row_id] = future.result(timeout=self.producer.delivery_timeout + 5)
            except DeliveryFailed as exc:
                outcomes[row_id] = exc
            except TimeoutError:
                outcomes[row_id] = None
        delivered: list[int] = []
        failure: BaseException | None = None
        for row in rows:
            outcome = outcomes.get(row[0])
            if isinstance(outcome, Delivery):
                delivered.append(row[0])
            else:
                failure = failure or outcome or DeliveryFailed(
                    f"no delivery report for event {row[1]} within "
                    f"{self.producer.delivery_timeout + 5:g}s")
        if delivered:
            self._mark_sent(delivered)
        if self.metrics is not None:
            settled = [outcomes.get(row[0]) for row in rows]
            self.metrics.record(
                ((row[7], row[2]) for row, o in zip(rows, settled, strict=True)
                 if isinstance(o, Delivery)),
                (o for o in settled if not isinstance(o, Delivery)),
                time.perf_counter() - began)
        return len(rows), len(delivered), failure

    def _mark_sent(self, ids: list[int]) -> None:
        now = _now_ms()
        if self.database.dialect == "postgresql":
            # Inside relay_once's transaction: committed with the lock's release.
            self._connection.execute(
                f"UPDATE {TABLE} SET sent_at_ms = %s WHERE id = ANY(%s)", (now, ids))
            return
        with transaction(self._connection):
            self._connection.executemany(
                f"UPDATE {TABLE} SET sent_at_ms = ? WHERE id = ?",
                [(now, row_id) for row_id in ids],
            )

    def purge_sent(self) -> int:
        """Delete rows sent longer ago than ``keep_sent_for``."""
        with transaction(self._connection):
            cursor = self._connection.execute(
                self.database.sql(f"DELETE FROM {TABLE} WHERE sent_at_ms < ?"),
                (_now_ms() - self.keep_sent_ms,),
            )
        return int(cursor.rowcount or 0)

    def status(self) -> OutboxStatus:
        return read_status(self._connection)

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until ``stop`` is set; a broker outage only delays rows, never drops them."""
        stop = stop or self._stop
        backoff = self.idle_wait
        last_purge = time.monotonic()
        while not stop.is_set():
            self._observe_status()
            try:
                count = self.relay_once()
                backoff = self.idle_wait
            except DeliveryFailed as exc:
                log.warning("%s; retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if time.monotonic() - last_purge > 60:
                self.purge_sent()
                last_purge = time.monotonic()
            if count < self.batch_size:
                stop.wait(self.idle_wait)

    def _observe_status(self) -> None:
        """Refresh the outbox gauges (at most every ``status_interval``)."""
        if self._gauges is None or time.monotonic() - self._status_at < self.status_interval:
            return
        self._status_at = time.monotonic()
        try:
            pending, oldest = self._connection.execute(
                f"SELECT COUNT(*), MIN(created_at_ms) FROM {TABLE} WHERE sent_at_ms IS NULL"
            ).fetchone()
        except Exception as exc:  # a metric must never stop the relay
            log.debug("outbox status not read: %s", exc)
            return
        self._gauges.set(int(pending), oldest)

    def start(self) -> None:
        """Relay in a background thread of this process."""
        self._thread = threading.Thread(target=self.run, name="tidings-outbox-relay",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.producer.close()
        try:
            self._release_lease()
        finally:
            self._connection.close()

"""The order service's HTTP API.

``POST /orders`` records the order and its ``order.created`` event in one database
transaction (the outbox), then answers 202: the event reaches Kafka shortly after,
even if the service crashes in between. ``GET /orders/{id}`` shows the status,
which inventory's events move to reserved or rejected; with ``callback_url`` in the
order, the outcome is also delivered there, signed, by the webhooks service (202 +
polling, or 202 + webhook).

``POST /orders/{id}/reminder`` schedules a reminder mail (a delayed event, through the
scheduler) and ``DELETE`` cancels it; ``GET /stock/{sku}`` asks inventory over Kafka
(request-reply) and answers with its reply. ``GET /metrics`` is the
relay's producer metrics (published, failures, publish latency, outbox backlog) for
Prometheus.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from producers.order_service import store
from producers.order_service.settings import OrderServiceSettings
from schemas import (
    LineItem,
    OrderCancelled,
    OrderCreated,
    OrderReminder,
    OrderStatusChanged,
    StockReported,
    StockRequested,
)
from tidings.db import Database, open_database, transaction
from tidings.producer.metrics import ProducerMetrics
from tidings.producer.outbox import Outbox, OutboxRelay
from tidings.producer.prepare import EventPreparer
from tidings.producer.publisher import Publisher
from tidings.producer.reliable import ReliableProducer
from tidings.requests import RequestTimeout
from tidings.settings import kafka_client_config
from tidings.topology import Topology, load_topology

SERVICE = "order-service"


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)
    unit_price_cents: int = Field(ge=0)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=128)
    customer_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: list[LineIn] = Field(min_length=1, max_length=100)
    coupon_code: str | None = Field(None, max_length=64)
    #: Where to deliver the order's outcome (reserved, rejected or cancelled) as a webhook.
    callback_url: AnyHttpUrl | None = None


class ReminderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_seconds: float = Field(gt=0, le=30 * 86400)
    note: str = Field("Your order is waiting for you.", min_length=1, max_length=500)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("customer request", min_length=1, max_length=500)


class Accepted(BaseModel):
    order_id: str
    status: str
    status_url: str


class OrderOut(BaseModel):
    order_id: str
    status: str
    status_reason: str | None
    customer_id: str
    customer_email: str
    currency: str
    total_cents: int
    items: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    callback_url: str | None = None


class OrderService:
    """Wiring of one running order service: database, outbox, optional relay."""

    def __init__(self, settings: OrderServiceSettings, topology: Topology) -> None:
        self.settings = settings
        self.topology = topology
        self.database: Database = open_database(settings.database_url)
        self.outbox = Outbox(self.database, EventPreparer(topology, SERVICE))
        self.relay: OutboxRelay | None = None
        self.registry = CollectorRegistry()
        self.metrics = ProducerMetrics(SERVICE, self.registry)
        self._publisher: Publisher | None = None

    def publisher(self) -> Publisher:
        """A publisher for requests (``GET /stock``), started on first use."""
        if self._publisher is None:
            self._publisher = Publisher(self.topology, SERVICE)
        return self._publisher

    def start(self) -> None:
        store.create_tables(self.database)
        if self.settings.relay:
            producer = ReliableProducer(kafka_client_config(
                None, self.topology.cluster.client_properties,
                self.topology.cluster.bootstrap_servers, near=self.topology.root))
            self.relay = OutboxRelay(self.database, producer, metrics=self.metrics)
            self.relay.start()

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        if self._publisher is not None:
            self._publisher.close()

    def connection(self) -> Iterator[Any]:
        connection = self.database.connect()
        try:
            yield connection
        finally:
            connection.close()


def _connection(request: Request) -> Iterator[Any]:
    service: OrderService = request.app.state.service
    yield from service.connection()


Connection = Annotated[Any, Depends(_connection)]


def create_app(
    settings: OrderServiceSettings | None = None, topology: Topology | None = None
) -> FastAPI:
    settings = settings or OrderServiceSettings()
    topology = topology or load_topology(settings.topology, check_imports=False)
    service = OrderService(settings, topology)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="Tidings order service", lifespan=lifespan)
    app.state.service = service

    @app.post("/orders", status_code=202, response_model=Accepted)
    def create_order(body: OrderIn, response: Response, connection: Connection) -> Accepted:
        order_id = str(uuid.uuid4())
        created = datetime.now(UTC)
        items = [item.model_dump() for item in body.items]
        total = sum(i["quantity"] * i["unit_price_cents"] for i in items)
        event = OrderCreated(
            order_id=order_id, customer_id=body.customer_id, customer_email=body.customer_email,
            currency=body.currency, items=[LineItem(**i) for i in items], total_cents=total,
            created_at=created, coupon_code=body.coupon_code,
        )
        with transaction(connection):
            store.insert_order(service.database, connection, {
                **body.model_dump(), "order_id": order_id, "items": items,
                "total_cents": total, "created_at_ms": int(created.timestamp() * 1000),
                "callback_url": str(body.callback_url) if body.callback_url else None,
            })
            service.outbox.stage(connection, event)
        url = f"/orders/{order_id}"
        response.headers["Location"] = url
        return Accepted(order_id=order_id, status=store.PENDING, status_url=url)

    @app.get("/orders/{order_id}", response_model=OrderOut)
    def get_order(order_id: str, connection: Connection) -> OrderOut:
        row = store.load_order(service.database, connection, order_id)
        if row is None:
            raise HTTPException(404, f"no order {order_id}")
        return _order_out(row)

    @app.post("/orders/{order_id}/cancel", status_code=202, response_model=Accepted)
    def cancel_order(order_id: str, connection: Connection,
                     body: Annotated[CancelIn | None, Body()] = None) -> Accepted:
        reason = (body or CancelIn()).reason
        with transaction(connection):
            row = store.load_order(service.database, connection, order_id)
            if row is None:
                raise HTTPException(404, f"no order {order_id}")
            if row.status == store.CANCELLED:
                raise HTTPException(409, f"order {order_id} is already cancelled")
            store.set_status(service.database, connection, order_id, store.CANCELLED, reason)
            now = datetime.now(UTC)
            service.outbox.stage(connection, OrderCancelled(
                order_id=order_id, reason=reason, cancelled_at=now))
            if OrderStatusChanged.event_type in service.outbox.preparer.allowed:
                service.outbox.stage(connection, OrderStatusChanged(
                    order_id=order_id, status=store.CANCELLED, reason=reason,
                    callback_url=row.callback_url, changed_at=now))
        return Accepted(order_id=order_id, status=store.CANCELLED,
                        status_url=f"/orders/{order_id}")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/orders/{order_id}/reminder", status_code=202)
    def remind(order_id: str, body: ReminderIn, connection: Connection) -> dict[str, Any]:
        """Mail the customer a reminder in ``in_seconds`` (cancel with DELETE)."""
        schedule_id = reminder_id(order_id)
        with transaction(connection):
            row = store.load_order(service.database, connection, order_id)
            if row is None:
                raise HTTPException(404, f"no order {order_id}")
            service.outbox.stage(connection, OrderReminder(
                order_id=order_id, customer_email=row.customer_email, note=body.note),
                delay=timedelta(seconds=body.in_seconds), schedule_id=schedule_id)
        due = datetime.now(UTC) + timedelta(seconds=body.in_seconds)
        return {"schedule_id": schedule_id, "deliver_at": due.isoformat()}

    @app.delete("/orders/{order_id}/reminder", status_code=202)
    def cancel_reminder(order_id: str, connection: Connection) -> dict[str, Any]:
        """Cancel the order's reminders scheduled until now."""
        with transaction(connection):
            service.outbox.stage_cancel(connection, reminder_id(order_id))
        return {"schedule_id": reminder_id(order_id), "cancelled": True}

    @app.get("/stock/{sku}")
    async def stock_level(sku: str) -> dict[str, Any]:
        """Inventory's on-hand count of ``sku``, asked over Kafka (request-reply)."""
        began = time.perf_counter()
        # The first request starts the reply listener, which blocks: not on the loop.
        await asyncio.to_thread(lambda: service.publisher().requester())
        try:
            reply: StockReported = await service.publisher().request(
                StockRequested(sku=sku), expect=StockReported,
                timeout=service.settings.request_timeout)
        except RequestTimeout as exc:
            raise HTTPException(504, str(exc)) from None
        return {"sku": reply.sku, "on_hand": reply.on_hand,
                "reported_at": reply.reported_at.isoformat(),
                "round_trip_ms": round((time.perf_counter() - began) * 1000, 1)}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        relay = service.relay
        return {"ok": True, "relayed": relay.relayed if relay else None}

    return app


def reminder_id(order_id: str) -> str:
    """The schedule id of an order's reminder: a later DELETE names it by the order."""
    return f"reminder-{order_id}"


def _order_out(row: store.OrderRow) -> OrderOut:
    return OrderOut(
        order_id=row.order_id, status=row.status, status_reason=row.status_reason,
        customer_id=row.customer_id, customer_email=row.customer_email, currency=row.currency,
        total_cents=row.total_cents, items=row.items,
        created_at=datetime.fromtimestamp(row.created_at_ms / 1000, UTC),
        updated_at=datetime.fromtimestamp(row.updated_at_ms / 1000, UTC),
        callback_url=row.callback_url,
    )

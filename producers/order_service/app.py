"""The order service's HTTP API.

``POST /orders`` records the order and its ``order.created`` event in one database
transaction (the outbox), then answers 202: the event reaches Kafka shortly after,
even if the service crashes in between. ``GET /orders/{id}`` shows the status,
which inventory's events move to reserved or rejected. ``GET /metrics`` is the relay's
producer metrics (published, failures, publish latency, outbox backlog) for Prometheus.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from producers.order_service import store
from producers.order_service.settings import OrderServiceSettings
from schemas import LineItem, OrderCancelled, OrderCreated
from tidings.db import Database, open_database, transaction
from tidings.producer.metrics import ProducerMetrics
from tidings.producer.outbox import Outbox, OutboxRelay
from tidings.producer.prepare import EventPreparer
from tidings.producer.reliable import ReliableProducer
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
            service.outbox.stage(connection, OrderCancelled(
                order_id=order_id, reason=reason, cancelled_at=datetime.now(UTC)))
        return Accepted(order_id=order_id, status=store.CANCELLED,
                        status_url=f"/orders/{order_id}")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        relay = service.relay
        return {"ok": True, "relayed": relay.relayed if relay else None}

    return app


def _order_out(row: store.OrderRow) -> OrderOut:
    return OrderOut(
        order_id=row.order_id, status=row.status, status_reason=row.status_reason,
        customer_id=row.customer_id, customer_email=row.customer_email, currency=row.currency,
        total_cents=row.total_cents, items=row.items,
        created_at=datetime.fromtimestamp(row.created_at_ms / 1000, UTC),
        updated_at=datetime.fromtimestamp(row.updated_at_ms / 1000, UTC),
    )

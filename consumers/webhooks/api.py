"""The webhooks service's HTTP API: register, list and remove endpoints; read the log.

``POST /endpoints`` answers with the endpoint's secret (``whsec_...``), which the
subscriber uses to verify signatures; ``GET /endpoints/{id}/secret`` shows it again.
The ``callbacks`` endpoint is built in: it signs deliveries to the ``callback_url``
an event carries (such as ``POST /orders`` with ``callback_url``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from consumers.webhooks import store
from tidings.db import Database


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    events: list[str] = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)
    #: Bring your own secret (``whsec_`` + base64), else one is generated.
    secret: str | None = Field(None, pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$")


def _connection(request: Request) -> Iterator[Any]:
    handle = request.app.state.database.connect()
    try:
        yield handle
    finally:
        handle.close()


Connection = Annotated[Any, Depends(_connection)]


def create_app(database: Database, subscribed: list[str]) -> FastAPI:
    """The API over ``database``; ``subscribed`` are the event types the group receives
    (an endpoint may ask only for those, or ``*``)."""
    app = FastAPI(title="Tidings webhooks")
    app.state.database = database

    def found(handle: Any, endpoint_id: str) -> store.Endpoint:
        endpoint = store.endpoint(database, handle, endpoint_id)
        if endpoint is None:
            raise HTTPException(404, f"no endpoint {endpoint_id}")
        return endpoint

    @app.post("/endpoints", status_code=201)
    def register(body: EndpointIn, handle: Connection) -> dict[str, Any]:
        unknown = [e for e in body.events if e != "*" and e not in subscribed]
        if unknown:
            raise HTTPException(422, f"the webhooks group does not receive {unknown}; it "
                                     f"receives {sorted(subscribed)} (or use '*')")
        endpoint = store.add_endpoint(database, handle, str(body.url), body.events,
                                      description=body.description, secret=body.secret)
        return {**endpoint.public(), "secret": endpoint.secret}

    @app.get("/endpoints")
    def listing(handle: Connection) -> list[dict[str, Any]]:
        return [e.public() for e in store.endpoints(database, handle)]

    @app.get("/endpoints/{endpoint_id}")
    def show(endpoint_id: str, handle: Connection) -> dict[str, Any]:
        return found(handle, endpoint_id).public()

    @app.get("/endpoints/{endpoint_id}/secret")
    def secret(endpoint_id: str, handle: Connection) -> dict[str, str]:
        return {"secret": found(handle, endpoint_id).secret}

    @app.delete("/endpoints/{endpoint_id}", status_code=204)
    def remove(endpoint_id: str, handle: Connection) -> Response:
        if endpoint_id == store.CALLBACKS:
            raise HTTPException(409, "the callbacks endpoint is built in")
        if not store.remove_endpoint(database, handle, endpoint_id):
            raise HTTPException(404, f"no endpoint {endpoint_id}")
        return Response(status_code=204)

    @app.get("/endpoints/{endpoint_id}/deliveries")
    def deliveries(endpoint_id: str, handle: Connection,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        found(handle, endpoint_id)
        return [attempt.__dict__ for attempt in
                store.attempts(database, handle, endpoint_id, limit)]

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app

"""Settings of the order service, from ``ORDER_SERVICE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class OrderServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDER_SERVICE_", extra="ignore")

    database_url: str = "sqlite:///.tidings/order-service.db"
    topology: Path = Path("topology.yaml")
    host: str = "127.0.0.1"
    port: int = 8080
    #: Run the outbox relay inside the service (a separate `tidings outbox relay` also works).
    relay: bool = True
    #: Seconds ``GET /stock/{sku}`` waits for inventory's reply.
    request_timeout: float = 10.0

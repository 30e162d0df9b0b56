"""Settings of the webhooks service, from ``WEBHOOKS_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOKS_", extra="ignore")

    #: Seconds an endpoint has to answer one attempt; a timeout is a failure.
    timeout: float = Field(5.0, gt=0)
    #: Failures in a row that open an endpoint's circuit.
    breaker_threshold: int = Field(5, ge=1)
    #: Seconds an open circuit waits before a trial; doubles per failed trial, up to max.
    breaker_cooldown: float = Field(2.0, gt=0)
    breaker_max_cooldown: float = Field(60.0, gt=0)
    #: How often an open circuit may postpone one delivery before it is dead-lettered.
    max_deferrals: int = Field(500, ge=1)

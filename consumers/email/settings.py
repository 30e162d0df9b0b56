"""Settings of the email service, from ``EMAIL_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class EmailSettings(BaseSettings):
    """Where confirmations are sent from and through."""

    model_config = SettingsConfigDict(env_prefix="EMAIL_", extra="ignore",
                                      populate_by_name=True)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(8025, ge=1, le=65535)
    #: ``EMAIL_FROM``: the confirmations' sender.
    sender: str = Field("orders@tidings.example", validation_alias="EMAIL_FROM")
    #: Seconds to wait for the server to connect or answer; a timeout is retried.
    smtp_timeout: float = Field(10.0, gt=0)
    #: Upgrade the connection with STARTTLS before sending (a real relay wants it).
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None

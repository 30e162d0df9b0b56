"""Settings of the inventory service, from ``INVENTORY_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

#: The catalogue seeded when ``INVENTORY_INITIAL_STOCK`` is not set.
DEFAULT_STOCK_FILE = Path(__file__).with_name("stock.yaml")


class InventorySettings(BaseSettings):
    """Where the initial stock comes from."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore")

    #: ``SKU=COUNT`` pairs separated by commas, e.g. ``SKU-1=100,SKU-2=5``;
    #: when set, it replaces ``stock_file``.
    initial_stock: str | None = None
    #: A YAML file with a ``stock:`` mapping of SKU to count.
    stock_file: Path = DEFAULT_STOCK_FILE

"""The inventory consumer group: stock per SKU, reserved or rejected per order.

``order.created`` -> every line in stock: the units are taken and
``inventory.reserved`` is published; otherwise nothing is taken and
``inventory.rejected`` names the first short SKU. ``order.cancelled`` gives a
reservation's units back. Initial stock: ``INVENTORY_INITIAL_STOCK`` or
``stock.yaml`` beside this file (see :mod:`consumers.inventory.settings`).
"""

from __future__ import annotations

from consumers.inventory.handler import handle, setup
from consumers.inventory.report import InventoryReport, inventory_report

__all__ = ["InventoryReport", "handle", "inventory_report", "setup"]

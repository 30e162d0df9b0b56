"""The analytics consumer group (a batch consumer): orders and revenue per minute,
units and revenue per SKU, cancellations per minute.

See :mod:`consumers.analytics.handler` for what it counts and how it writes.
"""

from __future__ import annotations

from consumers.analytics.handler import handle_batch, setup
from consumers.analytics.report import AnalyticsReport, SkuTotal, analytics_report

__all__ = ["AnalyticsReport", "SkuTotal", "analytics_report", "handle_batch", "setup"]

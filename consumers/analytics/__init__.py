"""The analytics consumer group (a batch consumer).

The service itself arrives with the consumer-runtime issue; until then its handler
refuses to run rather than pretending to work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def handle_batch(events: Sequence[Any], ctx: Any) -> None:
    """Handle a batch of events for the analytics group."""
    raise NotImplementedError("the analytics service is not built yet (consumer-runtime issue)")

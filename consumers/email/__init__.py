"""The email consumer group.

The service itself (its store, its effects, retries) arrives with the consumer-runtime
issue; until then its handler refuses to run rather than pretending to work.
"""

from __future__ import annotations

from typing import Any


def handle(event: Any, ctx: Any) -> None:
    """Handle one event for the email group."""
    raise NotImplementedError("the email service is not built yet (consumer-runtime issue)")

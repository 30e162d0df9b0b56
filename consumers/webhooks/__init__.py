"""The webhooks consumer group: chosen events to subscriber URLs, signed and retried.

Endpoints (URL, secret, event types) live in the group's database and are managed
over the service's HTTP API (:mod:`.api`). Each delivery is signed the Standard
Webhooks way (:mod:`.signing`), retried through the group's retry tiers, postponed
while an endpoint's circuit is open (:mod:`.breaker`), dead-lettered after the last
tier and logged per endpoint. Run it with ``python -m consumers.webhooks`` (API and
consumer together) or ``tidings run webhooks`` (consumer only). A local receiver
that checks signatures is in :mod:`.receiver`.
"""

from __future__ import annotations

from consumers.webhooks.handler import handle, setup

__all__ = ["handle", "setup"]

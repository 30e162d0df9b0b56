"""The email consumer group: an order confirmation per ``order.created``, over SMTP.

Settings: ``EMAIL_SMTP_HOST`` / ``EMAIL_SMTP_PORT`` (default 127.0.0.1:8025),
``EMAIL_FROM``, and optionally ``EMAIL_SMTP_STARTTLS``, ``EMAIL_SMTP_USERNAME``,
``EMAIL_SMTP_PASSWORD``, ``EMAIL_SMTP_TIMEOUT``. For a local server that stores
what it receives, see :mod:`consumers.email.smtp_sink`. How often a mail can be sent
(at least once; twice only in a narrow crash window) is in :mod:`.handler`.
"""

from __future__ import annotations

from consumers.email.handler import handle, setup
from consumers.email.smtp import PermanentMailError, TransientMailError

__all__ = ["PermanentMailError", "TransientMailError", "handle", "setup"]

"""Sending through SMTP, with each failure classed as worth retrying or not.

SMTP says which it is: 4xx replies are transient ("try again later"), 5xx are
permanent. A connection that fails or times out is transient too.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from consumers.email.settings import EmailSettings
from tidings.consumer.context import NonRetryableError


class TransientMailError(Exception):
    """The mail was not sent, and a later attempt may succeed (retried by the runtime)."""


class PermanentMailError(NonRetryableError):
    """The server refused the mail for good (5xx): retrying would be refused again."""


def send(message: EmailMessage, settings: EmailSettings) -> None:
    """Deliver ``message`` to the configured server; raise one of the errors above."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.smtp_timeout) as client:
            if settings.smtp_starttls:
                client.starttls()
            if settings.smtp_username:
                password = settings.smtp_password.get_secret_value() \
                    if settings.smtp_password else ""
                client.login(settings.smtp_username, password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        # One recipient per confirmation, so its refusal is the whole answer.
        code, reply = next(iter(exc.recipients.values()))
        raise _refusal(where, code, reply) from exc
    except smtplib.SMTPResponseException as exc:
        raise _refusal(where, exc.smtp_code, exc.smtp_error) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientMailError(f"SMTP {where}: {type(exc).__name__}: {exc}") from exc


def _refusal(where: str, code: int, reply: bytes | str) -> Exception:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    message = f"SMTP {where} answered {code} {text}"
    if 500 <= code < 600:
        return PermanentMailError(message)
    return TransientMailError(message)

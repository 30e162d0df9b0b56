"""Standard Webhooks signatures (https://www.standardwebhooks.com).

Every delivery carries ``webhook-id`` (the same on every attempt, so a receiver can
deduplicate), ``webhook-timestamp`` (seconds since the epoch, of this attempt) and
``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of
``"{webhook-id}.{webhook-timestamp}.{body}"`` keyed with the endpoint's secret. A
secret is written ``whsec_`` followed by its base64 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
PREFIX = "whsec_"
#: How far a timestamp may be from the receiver's clock (replayed requests are refused).
TOLERANCE_S = 5 * 60


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, body: bytes,
                   timestamp: int | None = None) -> dict[str, str]:
    """The three headers of one attempt (plus the content type)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return {ID: webhook_id, TIMESTAMP: str(moment),
            SIGNATURE: signature(secret, webhook_id, moment, body),
            "content-type": "application/json"}


def verify(secret: str, headers: Mapping[str, str], body: bytes, *,
           now: float | None = None) -> str | None:
    """Why a request is not a genuine delivery, or None when it is (for receivers)."""
    webhook_id, stamp, given = headers.get(ID), headers.get(TIMESTAMP), headers.get(SIGNATURE)
    if not webhook_id or not stamp or not given:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        moment = int(stamp)
    except ValueError:
        return "webhook-timestamp is not a number"
    if abs((time.time() if now is None else now) - moment) > TOLERANCE_S:
        return "webhook-timestamp is too far from now"
    expected = signature(secret, webhook_id, moment, body)
    # Several signatures may be given, space separated (during a secret rotation).
    if any(hmac.compare_digest(expected, candidate) for candidate in given.split()):
        return None
    return "signature does not match"

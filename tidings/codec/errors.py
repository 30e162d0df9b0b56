"""Why a payload could not be decoded.

Every :class:`DecodeError` is a fact about the bytes, not about the consumer: the
consumer routes such a message to its dead-letter topic instead of retrying it,
because no number of retries turns bad bytes into good ones. Anything that might
succeed later (the schema registry being unreachable) is deliberately *not* a
:class:`DecodeError`.
"""

from __future__ import annotations

from tidings.errors import TidingsError


class DecodeError(Exception):
    """The payload is not a valid encoding of any schema this codec knows.

    ``reason`` is a short, single-line explanation fit for a dead-letter header.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TruncatedPayload(DecodeError):
    """The payload ends before its header does."""


class WrongMagic(DecodeError):
    """The payload does not start with this wire format's marker bytes."""


class UnknownSchema(DecodeError):
    """The header names a writer schema (fingerprint or registry id) nobody declared."""


class UnexpectedEvent(DecodeError):
    """The payload is a valid event, but not the one the given reader schema is for."""


class CorruptPayload(DecodeError):
    """The body does not decode under its writer schema, or bytes are left over."""


class EncodeError(ValueError):
    """A record could not be encoded: a bug in the publishing code, never a data error."""


class SchemaRejected(EncodeError, TidingsError):
    """The registry refused a writer schema (incompatible with what it holds), or does
    not hold it and registering on publish is off. A user's fix, not a code bug."""


class RegistryUnavailable(TidingsError):
    """The schema registry could not be asked; retrying later may succeed."""

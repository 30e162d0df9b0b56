"""The result of decoding, shared by every wire format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Decoded:
    """A decoded payload: which event, which version wrote it, and the record (made
    for every consumed event, so not frozen: a frozen dataclass costs more to build).

    ``record`` is shaped by the *reader* schema (``reader_version``), so a consumer
    sees the fields it knows whatever version the publisher used.
    """

    event: str
    writer_version: int
    reader_version: int
    record: dict[str, Any]

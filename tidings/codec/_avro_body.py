"""The Avro body shared by both wire formats: write one record, read one record exactly."""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from tidings.codec.catalogue import SchemaVersion
from tidings.codec.decoded import Decoded
from tidings.codec.errors import CorruptPayload, EncodeError, UnexpectedEvent


def write_body(out: BytesIO, schema: SchemaVersion, record: Mapping[str, Any]) -> None:
    """Append ``record`` encoded under ``schema`` to ``out``."""
    try:
        schemaless_writer(out, schema.parsed, record)
    except Exception as exc:  # fastavro signals a bad record with assorted types
        raise EncodeError(f"cannot encode {schema.label}: {type(exc).__name__}: {exc}") from exc


def decode_body(
    payload: bytes, offset: int, writer: SchemaVersion, reader: SchemaVersion | None
) -> Decoded:
    """The record at ``payload[offset:]`` written with ``writer``, read as ``reader``
    (default: as written)."""
    if reader is None:
        reader = writer
    elif reader.event != writer.event:
        raise UnexpectedEvent(f"payload is {writer.label}, not the {reader.event} expected")
    record = read_body(payload, offset, writer, reader)
    return Decoded(writer.event, writer.version, reader.version, record)


def read_body(
    payload: bytes, offset: int, writer: SchemaVersion, reader: SchemaVersion
) -> dict[str, Any]:
    """Read the record at ``payload[offset:]``, written with ``writer``, as ``reader``.

    Every failure is a :class:`CorruptPayload`: for arbitrary bytes fastavro raises
    EOFError, UnicodeDecodeError, IndexError, ValueError, OverflowError and more, and
    none of them means anything but "these bytes are not that record".
    """
    buffer = BytesIO(payload)
    buffer.seek(offset)
    try:
        # Passing no reader schema when it is the writer skips fastavro's resolution step.
        record = schemaless_reader(
            buffer, writer.parsed, None if reader is writer else reader.parsed
        )
    except Exception as exc:
        raise CorruptPayload(
            f"body does not decode as {writer.label}: {type(exc).__name__}: {_short(exc)}"
        ) from None
    left = len(payload) - buffer.tell()
    if left:
        raise CorruptPayload(f"{left} byte(s) left over after a {writer.label} record")
    if not isinstance(record, dict):
        raise CorruptPayload(f"body of {writer.label} did not decode to a record")
    return record


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

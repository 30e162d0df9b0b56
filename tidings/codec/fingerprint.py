"""The CRC-64-AVRO (Rabin) fingerprint that names a writer schema on the wire."""

from __future__ import annotations

from typing import Any

from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

FINGERPRINT_SIZE = 8
#: A schema as JSON data (a record is a dict), parsed by fastavro or not.
AvroSchema = str | list[Any] | dict[str, Any]


def canonical_form(schema: AvroSchema) -> str:
    """The schema's Parsing Canonical Form: what two equivalent schemas have in common."""
    return str(to_parsing_canonical_form(schema))


def fingerprint(schema: AvroSchema) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of ``schema``'s canonical form.

    The single-object encoding puts exactly these bytes after ``0xC3 0x01``. fastavro
    renders the 64-bit value as hex in little-endian byte order already, which the
    tests check against the Avro specification's published vectors.
    """
    hex_digest = _fastavro_fingerprint(canonical_form(schema), "CRC-64-AVRO")
    return bytes.fromhex(hex_digest)

"""The wire format of order.created as the floors and Quix's Avro contenders need it,
built from the schema file with fastavro alone (no Tidings code on their paths).

Tidings writes Avro single-object encoding: ``0xC3 0x01``, the writer schema's 8-byte
CRC-64-AVRO fingerprint, then the schemaless Avro body. Quix Streams reads and writes
the schemaless body only, so its topics carry the body without those 10 bytes.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from benchmarks.harness import REPO

#: The schema version the bench topology declares for order.created.
SCHEMA_PATH = REPO / "schemas" / "order.created.v2.avsc"
MAGIC = b"\xc3\x01"
HEADER_SIZE = 10  # MAGIC + the fingerprint


@cache
def schema() -> dict[str, Any]:
    """The writer schema as JSON data (what Quix's Avro (de)serializers take)."""
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return data


@cache
def parsed_schema() -> Any:
    """The writer schema parsed once by fastavro (what schemaless_reader/writer take)."""
    from fastavro import parse_schema

    return parse_schema(schema())


@cache
def fingerprint() -> bytes:
    """The writer's CRC-64-AVRO fingerprint, 8 bytes little-endian (Avro specification)."""
    from fastavro.schema import fingerprint as avro_fingerprint
    from fastavro.schema import to_parsing_canonical_form

    return bytes.fromhex(avro_fingerprint(to_parsing_canonical_form(schema()), "CRC-64-AVRO"))


def single_object_header() -> bytes:
    """The 10 bytes in front of every body Tidings writes with this schema."""
    return MAGIC + fingerprint()

"""Independent references for checking the codecs: the Avro spec's Parsing Canonical Form and
CRC-64-AVRO fingerprint written from the specification, and sample records for any schema.

Nothing here calls fastavro or Tidewire, so agreeing with them means something.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from typing import Any

# "Schema Fingerprints" in the Avro specification: the 64-bit Rabin fingerprint whose empty
# value is this constant, computed byte by byte through a 256-entry table.
CRC64_AVRO_EMPTY = 0xC15D213AA4D7A795


def _crc64_avro_table() -> list[int]:
    table = []
    for index in range(256):
        fingerprint = index
        for _ in range(8):
            fingerprint = (fingerprint >> 1) ^ (CRC64_AVRO_EMPTY & -(fingerprint & 1))
        table.append(fingerprint)
    return table


_CRC64_AVRO_TABLE = _crc64_avro_table()


def crc64_avro(data: bytes) -> int:
    """The CRC-64-AVRO fingerprint of ``data`` as an unsigned 64-bit integer."""
    fingerprint = CRC64_AVRO_EMPTY
    for byte in data:
        fingerprint = (fingerprint >> 8) ^ _CRC64_AVRO_TABLE[(fingerprint ^ byte) & 0xFF]
    return fingerprint


def single_object_header(canonical_form: str) -> bytes:
    """``C3 01`` and the fingerprint, little-endian, as the single-object encoding specifies."""
    return b"\xc3\x01" + struct.pack("<Q", crc64_avro(canonical_form.encode()))


PRIMITIVE_TYPES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_TYPES = frozenset({"record", "enum", "fixed"})


def parsing_canonical_form(schema: Any) -> str:
    """The spec's Parsing Canonical Form of a schema given as JSON data.

    Transformations, as the spec numbers them: PRIMITIVES (``{"type": "long", "logicalType": ...}``
    becomes ``"long"``), FULLNAMES, STRIP (keep type, name, fields, symbols, items, values, size),
    ORDER (that order), STRINGS/INTEGERS/WHITESPACE (compact JSON with raw UTF-8).
    """
    return json.dumps(_canonical(schema, namespace=None), separators=(",", ":"), ensure_ascii=False)


def _canonical(schema: Any, *, namespace: str | None) -> Any:
    if isinstance(schema, str):
        return schema if schema in PRIMITIVE_TYPES else _full_name(schema, namespace)
    if isinstance(schema, list):
        return [_canonical(branch, namespace=namespace) for branch in schema]
    kind = schema["type"]
    if not isinstance(kind, str):
        return _canonical(kind, namespace=namespace)
    if kind in PRIMITIVE_TYPES:
        return kind
    if kind in NAMED_TYPES:
        name = _full_name(schema["name"], schema.get("namespace", namespace))
        inner_namespace = name.rpartition(".")[0] or None
        canonical: dict[str, Any] = {"name": name, "type": kind}
        if kind == "record":
            canonical["fields"] = [
                {"name": field["name"], "type": _canonical(field["type"], namespace=inner_namespace)}
                for field in schema["fields"]
            ]
        elif kind == "enum":
            canonical["symbols"] = list(schema["symbols"])
        else:
            canonical["size"] = schema["size"]
        return canonical
    if kind == "array":
        return {"type": "array", "items": _canonical(schema["items"], namespace=namespace)}
    if kind == "map":
        return {"type": "map", "values": _canonical(schema["values"], namespace=namespace)}
    return _full_name(kind, namespace)


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


SAMPLE_TIME = datetime(2025, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


def sample_record(schema: Any) -> Any:
    """A value that fits ``schema`` (JSON data), exercising every field.

    Fields with a default take it, except nullable ones, which take their non-null branch so
    that both branches of the evolution are exercised.
    """
    return _sample(schema, named={})


def _sample(schema: Any, *, named: dict[str, Any]) -> Any:
    if isinstance(schema, str):
        return _sample_primitive(schema) if schema in PRIMITIVE_TYPES else _sample(named[schema], named=named)
    if isinstance(schema, list):
        branch = next((branch for branch in schema if branch != "null"), "null")
        return _sample(branch, named=named)
    kind = schema["type"]
    if not isinstance(kind, str):
        return _sample(kind, named=named)
    if schema.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
        return SAMPLE_TIME
    if kind in PRIMITIVE_TYPES:
        return _sample_primitive(kind)
    if kind in NAMED_TYPES:
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
    if kind == "record":
        return {
            field["name"]: (
                field["default"]
                if "default" in field and not isinstance(field["type"], list)
                else _sample(field["type"], named=named)
            )
            for field in schema["fields"]
        }
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return bytes(schema["size"])
    if kind == "array":
        return [_sample(schema["items"], named=named)]
    if kind == "map":
        return {"key": _sample(schema["values"], named=named)}
    return _sample(named[kind], named=named)


def _sample_primitive(kind: str) -> Any:
    return {
        "null": None,
        "boolean": True,
        "int": 1,
        "long": 1,
        "float": 0.5,
        "double": 0.5,
        "bytes": b"\x00\xff",
        "string": "x",
    }[kind]

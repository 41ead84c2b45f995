"""Decoding Debezium change events (JSON, no schemas) into typed changes of one pipeline.

A message on ``cdc.<schema>.<table>`` is one of:

- ``op`` ``c`` (insert), ``u`` (update), ``r`` (snapshot read) → :class:`RowUpsert` of ``after``;
- ``op`` ``d`` → :class:`RowDelete` (``before`` holds at least the primary key);
- ``op`` ``t`` → :class:`TableTruncate` of the whole table;
- a null value (the tombstone Kafka compaction needs after a delete) → ``None``: the delete event
  before it already did the work.

Anything else raises :class:`~streams.errors.PoisonEventError` with a one-line reason. Decoding is
pure: no I/O, so every shape (including malformed ones) is unit-tested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from streams.errors import PoisonEventError
from streams.messages import MessageRef, RawMessage
from tidewire.events import FailureStage
from tidewire.pipeline_spec import PipelineSpec
from tidewire.vector_store import SourcePosition

UpsertOperation = Literal["create", "update", "read"]
_UPSERT_OPERATIONS: dict[str, UpsertOperation] = {"c": "create", "u": "update", "r": "read"}


@dataclass(frozen=True)
class RowUpsert:
    """A row as it is after an insert, update or snapshot read."""

    pipeline: str
    document_id: str
    row: dict[str, Any]
    position: SourcePosition
    operation: UpsertOperation
    ref: MessageRef


@dataclass(frozen=True)
class RowDelete:
    """A deleted row; only its id is trusted (``tenant_id`` is left to the stored state)."""

    pipeline: str
    document_id: str
    tenant_id: str | None
    position: SourcePosition
    ref: MessageRef


@dataclass(frozen=True)
class TableTruncate:
    """``TRUNCATE`` of the pipeline's source table."""

    pipeline: str
    position: SourcePosition
    ref: MessageRef


ChangeEvent = RowUpsert | RowDelete | TableTruncate


def decode_change(message: RawMessage, spec: PipelineSpec) -> ChangeEvent | None:
    """The change ``message`` carries for the pipeline ``spec``; ``None`` for a tombstone.

    Raises :class:`PoisonEventError` (stage DECODE or VALIDATE) for a message that is not a
    Debezium change event of this table.
    """
    try:
        return _decode_change(message, spec)
    except (ValueError, OverflowError, RecursionError) as error:
        # What the checks below did not foresee in a malformed message (a nesting too deep for the
        # JSON parser, a number out of every range): a dead letter too, never a stopped worker.
        # PoisonEventError is no ValueError, so the checks' own reasons pass through untouched.
        raise PoisonEventError(
            f"cannot decode the change: {type(error).__name__}: {error}",
            stage=FailureStage.DECODE,
            code="cdc_undecodable",
        ) from None


def _decode_change(message: RawMessage, spec: PipelineSpec) -> ChangeEvent | None:
    if message.value is None:
        return None
    envelope = _json_object(message.value, "value")
    # Debezium with schemas enabled wraps the envelope in {"schema", "payload"}; accept both.
    if "payload" in envelope and "op" not in envelope:
        payload = envelope["payload"]
        if payload is None:
            return None
        if not isinstance(payload, dict):
            raise _invalid("payload is not a JSON object")
        envelope = payload
    operation = envelope.get("op")
    if not isinstance(operation, str):
        raise _invalid("no 'op' field: not a Debezium change event")
    position = _position(envelope)
    if operation == "t":
        return TableTruncate(pipeline=spec.name, position=position, ref=message.ref)
    if operation in _UPSERT_OPERATIONS:
        after = envelope.get("after")
        if not isinstance(after, dict):
            raise _invalid(f"op {operation!r} without an 'after' row")
        return RowUpsert(
            pipeline=spec.name,
            document_id=_document_id(after, message, spec),
            row=after,
            position=position,
            operation=_UPSERT_OPERATIONS[operation],
            ref=message.ref,
        )
    if operation == "d":
        before = envelope.get("before")
        if not isinstance(before, dict):
            before = {}
        # The tenant is not taken from `before`: without REPLICA IDENTITY FULL, Debezium fills its
        # non-key NOT NULL columns with their defaults (tenant_id = 'default'), which would move the
        # document to another tenant. The stored state knows the tenant.
        return RowDelete(
            pipeline=spec.name,
            document_id=_document_id(before, message, spec),
            tenant_id=None,
            position=position,
            ref=message.ref,
        )
    raise _invalid(f"unknown op {operation!r} (expected c, u, d, r or t)")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        decoded = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PoisonEventError(
            f"message {what} is not JSON: {error}", stage=FailureStage.DECODE, code="cdc_not_json"
        ) from None
    if not isinstance(decoded, dict):
        raise PoisonEventError(
            f"message {what} is JSON but not an object", stage=FailureStage.DECODE, code="cdc_not_object"
        )
    return decoded


def _position(envelope: dict[str, Any]) -> SourcePosition:
    source = envelope.get("source")
    if not isinstance(source, dict):
        raise _invalid("no 'source' block: cannot order the change")
    lsn = source.get("lsn")
    if lsn is None:
        # Incremental snapshot reads (`tidewire reindex`) carry no lsn; their `sequence` holds the
        # [last committed, current] LSNs of the snapshot window, and the row is as of the current one.
        lsn = _sequence_lsn(source.get("sequence"))
    ts_ms = source.get("ts_ms")
    # bool is an int subclass; a true/false lsn is garbage, not position 1/0.
    if not isinstance(lsn, int) or isinstance(lsn, bool) or not 0 <= lsn <= _MAX_LSN:
        raise _invalid(f"source.lsn must be an integer from 0 to 2^63-1, got {lsn!r}")
    if not isinstance(ts_ms, int) or isinstance(ts_ms, bool) or not 0 <= ts_ms <= _MAX_TS_MS:
        raise _invalid(f"source.ts_ms must be milliseconds since 1970 up to the year 9999, got {ts_ms!r}")
    return SourcePosition(lsn=lsn, committed_at=datetime.fromtimestamp(ts_ms / 1000, tz=UTC))


def _sequence_lsn(sequence: Any) -> int | None:
    try:
        values = json.loads(sequence) if isinstance(sequence, str) else None
    except json.JSONDecodeError:
        return None
    if not isinstance(values, list):
        return None
    lsns = [int(value) for value in values if isinstance(value, str | int) and str(value).isdigit()]
    return max(lsns) if lsns else None


def _document_id(row: dict[str, Any], message: RawMessage, spec: PipelineSpec) -> str:
    value = row.get(spec.primary_key)
    if value is None and message.key is not None:
        # A delete without REPLICA IDENTITY still has the primary key in the message key.
        key = _json_object(message.key, "key")
        payload = key.get("payload")
        value = (payload if isinstance(payload, dict) else key).get(spec.primary_key)
    if value is None or isinstance(value, bool | dict | list):
        raise _invalid(f"no usable primary key {spec.primary_key!r} in the change")
    document_id = str(value)
    if not document_id.strip():
        raise _invalid(f"primary key {spec.primary_key!r} is empty")
    return document_id


# Positions are stored as bigint; commit times must fit a datetime (year 9999).
_MAX_LSN = 2**63 - 1
_MAX_TS_MS = 253_402_300_799_999


def _invalid(reason: str) -> PoisonEventError:
    return PoisonEventError(reason, stage=FailureStage.VALIDATE, code="cdc_invalid_event")

"""Decoding Debezium change events: every op, tombstones, and the malformed shapes that go to the DLQ."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.debezium_decoding import RowDelete, RowUpsert, TableTruncate, decode_change
from streams.errors import PoisonEventError
from streams.messages import MessageRef, RawMessage
from tidewire.events import FailureStage
from tidewire.pipeline_spec import PipelineSpec

SPEC = PipelineSpec()
SOURCE = {"lsn": 1234, "ts_ms": 1_700_000_000_123, "txId": 7, "snapshot": "false"}


def message(value: Any, key: Any = None, *, raw: bytes | None = None) -> RawMessage:
    encoded = raw if raw is not None else (None if value is None else json.dumps(value).encode())
    return RawMessage(
        ref=MessageRef("cdc.public.documents", 2, 41),
        key=None if key is None else json.dumps(key).encode(),
        value=encoded,
    )


def row(**overrides: Any) -> dict[str, Any]:
    return {"id": "doc-1", "tenant_id": "acme", "title": "T", "body": "B", "metadata": "{}", **overrides}


@pytest.mark.parametrize(("op", "operation"), [("c", "create"), ("u", "update"), ("r", "read")])
def test_upserts_carry_the_after_row_and_the_source_position(op: str, operation: str) -> None:
    change = decode_change(message({"before": None, "after": row(), "source": SOURCE, "op": op}), SPEC)
    assert isinstance(change, RowUpsert)
    assert change.operation == operation
    assert change.document_id == "doc-1"
    assert change.row["body"] == "B"
    assert change.position.lsn == 1234
    assert change.position.committed_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert change.ref == MessageRef("cdc.public.documents", 2, 41)


def test_delete_takes_the_id_from_before_but_not_the_defaulted_tenant() -> None:
    before = row(
        tenant_id="default", title=None, body=None
    )  # what Debezium sends without REPLICA IDENTITY FULL
    change = decode_change(message({"before": before, "after": None, "source": SOURCE, "op": "d"}), SPEC)
    assert isinstance(change, RowDelete)
    assert (change.document_id, change.tenant_id) == ("doc-1", None)


def test_delete_without_before_falls_back_to_the_message_key() -> None:
    change = decode_change(
        message({"before": None, "after": None, "source": SOURCE, "op": "d"}, key={"id": "doc-9"}), SPEC
    )
    assert isinstance(change, RowDelete)
    assert (change.document_id, change.tenant_id) == ("doc-9", None)


def test_tombstone_is_ignored() -> None:
    assert decode_change(message(None, key={"id": "doc-1"}), SPEC) is None


def test_truncate_applies_to_the_pipeline() -> None:
    change = decode_change(message({"before": None, "after": None, "source": SOURCE, "op": "t"}), SPEC)
    assert isinstance(change, TableTruncate)
    assert change.pipeline == "documents"
    assert change.position.lsn == 1234


def test_incremental_snapshot_reads_take_their_position_from_the_sequence() -> None:
    source = {"lsn": None, "ts_ms": 1, "snapshot": "incremental", "sequence": '["174928512","174928600"]'}
    change = decode_change(message({"after": row(), "source": source, "op": "r"}), SPEC)
    assert isinstance(change, RowUpsert)
    assert (change.operation, change.position.lsn) == ("read", 174928600)


def test_schema_envelope_is_unwrapped() -> None:
    envelope = {"schema": {}, "payload": {"before": None, "after": row(), "source": SOURCE, "op": "c"}}
    assert isinstance(decode_change(message(envelope), SPEC), RowUpsert)


def test_integer_primary_keys_become_text_ids() -> None:
    change = decode_change(message({"after": row(id=42), "source": SOURCE, "op": "c"}), SPEC)
    assert isinstance(change, RowUpsert)
    assert change.document_id == "42"


@pytest.mark.parametrize(
    ("raw", "stage", "code"),
    [
        (b"not json {", FailureStage.DECODE, "cdc_not_json"),
        (b"\xff\xfe\x00", FailureStage.DECODE, "cdc_not_json"),
        (b"[1, 2]", FailureStage.DECODE, "cdc_not_object"),
        (b'"text"', FailureStage.DECODE, "cdc_not_object"),
    ],
)
def test_undecodable_values_are_poison_at_decode(raw: bytes, stage: FailureStage, code: str) -> None:
    with pytest.raises(PoisonEventError) as caught:
        decode_change(message(None, raw=raw), SPEC)
    assert (caught.value.stage, caught.value.code) == (stage, code)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"after": row(), "source": SOURCE}, "no 'op'"),
        ({"after": row(), "source": SOURCE, "op": "x"}, "unknown op 'x'"),
        ({"after": None, "source": SOURCE, "op": "c"}, "without an 'after' row"),
        ({"after": row(), "op": "c"}, "no 'source' block"),
        ({"after": row(), "source": {"lsn": "12", "ts_ms": 1}, "op": "c"}, "source.lsn"),
        ({"after": row(), "source": {"lsn": True, "ts_ms": 1}, "op": "c"}, "source.lsn"),
        ({"after": row(), "source": {"lsn": 1}, "op": "u"}, "source.ts_ms"),
        ({"after": row(id=None), "source": SOURCE, "op": "c"}, "no usable primary key"),
        ({"after": row(id="  "), "source": SOURCE, "op": "c"}, "is empty"),
        ({"after": row(id={"a": 1}), "source": SOURCE, "op": "c"}, "no usable primary key"),
        ({"before": None, "source": SOURCE, "op": "d"}, "no usable primary key"),
        ({"after": row(), "source": {"lsn": 2**63, "ts_ms": 1}, "op": "c"}, "source.lsn"),
        ({"after": row(), "source": {"lsn": -1, "ts_ms": 1}, "op": "c"}, "source.lsn"),
        ({"after": row(), "source": {"lsn": 1, "ts_ms": 10**18}, "op": "c"}, "source.ts_ms"),
        ({"after": row(), "source": {"lsn": 1, "ts_ms": -5}, "op": "c"}, "source.ts_ms"),
    ],
)
def test_invalid_change_events_are_poison_at_validate(value: dict[str, Any], reason: str) -> None:
    with pytest.raises(PoisonEventError) as caught:
        decode_change(message(value), SPEC)
    assert caught.value.stage is FailureStage.VALIDATE
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "raw",
    [
        # Deeper than the JSON parser's recursion limit.
        b'{"op": "c", "after": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        # A snapshot read's sequence with a digit int() cannot read.
        json.dumps({"op": "r", "after": row(), "source": {"sequence": '["\u00b2"]', "ts_ms": 1}}).encode(),
    ],
)
def test_what_the_checks_do_not_foresee_is_poison_too_never_an_uncaught_error(raw: bytes) -> None:
    with pytest.raises(PoisonEventError) as caught:
        decode_change(message(None, raw=raw), SPEC)
    assert caught.value.stage in (FailureStage.DECODE, FailureStage.VALIDATE)

"""The event dataclasses: the IngestDocument contract, freshness, dead letters from errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.events.conftest import EVENT_TIME, make_dead_letter, make_ingest_document, make_notification
from tidewire.errors import ConfigurationError
from tidewire.events import (
    DeadLetter,
    EventDecodeError,
    EventValidationError,
    FailureStage,
    IngestDocument,
    IngestOperation,
    InvalidEventError,
    MessageHeader,
    Notification,
    NotificationType,
)
from tidewire.events.models import (
    MAX_BODY_BYTES,
    MAX_DOCUMENT_ID_CHARS,
    MAX_METADATA_BYTES,
    MAX_TITLE_CHARS,
    decode_metadata,
)


def test_defaults_describe_an_upsert_for_the_default_tenant() -> None:
    document = IngestDocument(document_id="a", event_time=EVENT_TIME)
    assert document.tenant_id == "default"
    assert document.operation is IngestOperation.UPSERT
    assert document.metadata == {}
    assert document.to_record()["metadata_json"] == "{}"
    assert document.message_key() == b"a"


def test_metadata_travels_as_compact_json_and_keeps_unicode() -> None:
    document = make_ingest_document(metadata={"título": "Génesis", "n": [1, 2.5, None, True], "o": {}})
    metadata_json = document.to_record()["metadata_json"]
    assert metadata_json == '{"título":"Génesis","n":[1,2.5,null,true],"o":{}}'
    assert decode_metadata(metadata_json) == document.metadata


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"document_id": ""}, "document_id"),
        ({"document_id": "x" * (MAX_DOCUMENT_ID_CHARS + 1)}, "document_id"),
        ({"document_id": "line\nbreak"}, "document_id"),
        ({"document_id": "nul\x00"}, "document_id"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"tenant_id": "acme corp"}, "tenant_id"),
        ({"tenant_id": "-acme"}, "tenant_id"),
        ({"tenant_id": "a" * 65}, "tenant_id"),
        ({"pipeline": "no/slashes"}, "pipeline"),
        ({"source": ""}, "source"),
        ({"title": "t" * (MAX_TITLE_CHARS + 1)}, "title"),
        ({"body": "nul\x00byte"}, "body"),
        # 3 bytes per character in UTF-8: under the limit in characters, over it in bytes.
        ({"body": "€" * (MAX_BODY_BYTES // 3 + 1)}, "body"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"score": float("nan")}}, "metadata"),
        ({"metadata": {"deep": [{"x": float("inf")}]}}, "metadata"),
        ({"metadata": {"text": "nul\x00"}}, "metadata"),
        ({"metadata": {"when": datetime(2025, 1, 1, tzinfo=UTC)}}, "metadata"),
        ({"metadata": {1: "int key"}}, "metadata"),
        ({"metadata": {"big": "x" * MAX_METADATA_BYTES}}, "metadata"),
        ({"event_time": datetime(2025, 1, 1)}, "event_time"),
    ],
    ids=lambda value: str(value)[:40] if not isinstance(value, str) else value,
)
def test_ingest_document_contract_violations_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(EventValidationError) as raised:
        make_ingest_document(**overrides)
    assert raised.value.field == field
    assert raised.value.code == "event_validation_error"
    assert isinstance(raised.value, InvalidEventError)


def test_text_fields_may_be_empty_or_multiline_but_not_too_long() -> None:
    document = make_ingest_document(title="", body="line one\n\n\tline two", source=None, pipeline=None)
    assert document.body == "line one\n\n\tline two"
    make_ingest_document(body="x" * MAX_BODY_BYTES)


@pytest.mark.parametrize(
    ("metadata_json", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object, not list"),
        ('"text"', "must be a JSON object, not str"),
        ('{"x": NaN}', "not valid JSON"),
        ('{"x": Infinity}', "not valid JSON"),
        ('{"x": "\\u0000"}', "NUL"),
        ('{"x": "' + "y" * MAX_METADATA_BYTES + '"}', "over 65536 bytes"),
    ],
)
def test_metadata_json_from_the_wire_must_be_an_object_jsonb_accepts(
    metadata_json: str, message: str
) -> None:
    record = make_ingest_document().to_record() | {"metadata_json": metadata_json}
    with pytest.raises(EventValidationError, match=message) as raised:
        IngestDocument.from_record(record)
    assert raised.value.field in ("metadata_json", "metadata")


def test_notification_freshness_is_measured_and_never_negative() -> None:
    committed = datetime(2025, 3, 14, 12, 0, 0, 250_000, tzinfo=UTC)
    fields: dict[str, Any] = {
        "event_type": NotificationType.INDEXED,
        "tenant_id": "acme",
        "document_id": "d",
        "pipeline": "default",
        "chunks": 2,
        "model": "m",
        "source_committed_at": committed,
    }
    later = Notification.for_change(**fields, indexed_at=committed + timedelta(seconds=1, microseconds=999))
    assert later.freshness_ms == 1000
    skewed = Notification.for_change(**fields, indexed_at=committed - timedelta(milliseconds=5))
    assert skewed.freshness_ms == 0
    assert later.message_key() == b"d"


def test_a_deleted_notification_has_no_chunks() -> None:
    with pytest.raises(EventValidationError) as raised:
        make_notification(event_type=NotificationType.DELETED, chunks=1)
    assert raised.value.field == "chunks"
    with pytest.raises(EventValidationError):
        make_notification(chunks=-1)


def test_notification_times_must_be_timezone_aware() -> None:
    with pytest.raises(EventValidationError) as raised:
        make_notification(indexed_at=datetime(2025, 1, 1))
    assert raised.value.field == "indexed_at"


def test_dead_letter_from_a_tidewire_error_keeps_its_code_and_first_line() -> None:
    error = EventDecodeError("message on t is 3 bytes\nsecond line", code="event_truncated")
    failed_at = datetime(2025, 1, 1, tzinfo=UTC)

    letter = DeadLetter.from_failure(
        error=error,
        stage=FailureStage.DECODE,
        topic="tidewire.ingest",
        partition=2,
        offset=99,
        key=b"doc-1",
        value=b"\x00\x01\x02",
        headers=[("trace", b"1"), ("trace", None)],
        failed_at=failed_at,
    )

    assert letter.error_code == "event_truncated"
    assert letter.error_class == "tidewire.events.errors.EventDecodeError"
    assert letter.reason == "message on t is 3 bytes"
    assert letter.headers == (MessageHeader("trace", b"1"), MessageHeader("trace", None))
    assert letter.message_key() == b"doc-1"
    assert letter.attempts == 1


def test_dead_letter_from_an_unexpected_exception() -> None:
    letter = DeadLetter.from_failure(
        error=ZeroDivisionError(),
        stage=FailureStage.EMBED,
        topic="cdc.public.documents",
        partition=0,
        offset=0,
        key=None,
        value=None,
        failed_at=EVENT_TIME,
        attempts=3,
    )
    assert letter.error_code == "unexpected_error"
    assert letter.error_class == "builtins.ZeroDivisionError"
    assert letter.reason == "ZeroDivisionError"
    assert letter.message_key() is None


def test_dead_letter_reuses_configuration_error_codes() -> None:
    letter = DeadLetter.from_failure(
        error=ConfigurationError("pipeline 'x' is not configured"),
        stage=FailureStage.VALIDATE,
        topic="tidewire.ingest",
        partition=0,
        offset=1,
        key=b"k",
        value=b"v",
        failed_at=EVENT_TIME,
    )
    assert letter.error_code == "configuration_error"


def test_dead_letter_attempts_start_at_one() -> None:
    with pytest.raises(EventValidationError):
        make_dead_letter(attempts=0)

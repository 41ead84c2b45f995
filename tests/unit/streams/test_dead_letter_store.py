"""What `tidewire dlq list|show` prints for a dead letter."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.dead_letter_store import StoredDeadLetter
from tidewire.events import DeadLetter, FailureStage, MessageHeader

LETTER = DeadLetter(
    topic="cdc.public.documents",
    partition=3,
    offset=41,
    key=b'{"id":"doc-1"}',
    value=b"\xff\xfe not utf-8",
    stage=FailureStage.DECODE,
    error_code="cdc_not_json",
    reason="message value is not JSON",
    failed_at=datetime(2026, 1, 1, tzinfo=UTC),
    headers=(MessageHeader("trace", b"abc"),),
    pipeline="documents",
)


def test_summary_names_the_letter_by_its_dlq_position_and_the_original_by_its_own() -> None:
    summary = StoredDeadLetter(partition=0, offset=7, letter=LETTER).summary()
    assert summary["id"] == "0:7"
    assert (summary["topic"], summary["partition"], summary["offset"]) == ("cdc.public.documents", 3, 41)
    assert (summary["stage"], summary["error_code"]) == ("decode", "cdc_not_json")


def test_detail_shows_text_as_text_and_other_bytes_as_base64() -> None:
    detail = StoredDeadLetter(partition=0, offset=7, letter=LETTER).detail()
    assert detail["key"] == '{"id":"doc-1"}'
    assert detail["value"].startswith("base64:")
    assert detail["headers"] == {"trace": "abc"}

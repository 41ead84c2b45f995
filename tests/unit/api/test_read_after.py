"""Read-your-writes tokens: ``<document_id>@<timestamp>`` and ``<document_id>@lsn:<pg_lsn>``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.errors import ValidationFailedError
from api.search import IndexedPosition, ReadAfter, parse_pg_lsn


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/16B3748", 0x16B3748),
        ("0/16b3748", 0x16B3748),
        ("1/0", 1 << 32),
        ("16/B374D848", (0x16 << 32) + 0xB374D848),
        ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
    ],
)
def test_pg_lsn_text_is_the_high_and_low_32_bits(text: str, value: int) -> None:
    assert parse_pg_lsn(text) == value


def test_the_lsn_form_names_the_document_and_position() -> None:
    token = ReadAfter.parse("doc-1@lsn:0/16B3748")
    assert token == ReadAfter(document_id="doc-1", lsn=0x16B3748)
    # The last '@' separates: a document id may contain one.
    assert ReadAfter.parse("mail@example.com@lsn:2/A").document_id == "mail@example.com"


def test_the_timestamp_form_still_parses() -> None:
    token = ReadAfter.parse("doc-1@2026-11-24T10:00:00.123456Z")
    assert token.lsn is None
    assert token.committed_at == datetime(2026, 11, 24, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "garbage",
    [
        "doc",
        "@lsn:0/1",
        "doc@",
        "doc@lsn:",
        "doc@lsn:0",
        "doc@lsn:/1",
        "doc@lsn:0/",
        "doc@lsn:0/1/2",
        "doc@lsn:g/1",
        "doc@lsn:-1/1",
        "doc@lsn:0x1/1",
        "doc@lsn:123456789/0",  # more than 32 bits
        "doc@lsn: 0/1",
        "doc@lsn:0/1 ",
        "doc@lsn:\u0661/\u0662",  # Arabic-Indic digits are not hexadecimal
        "doc@lsn:0/1\x00",
        "doc@LSN:0/1",
        "doc@yesterday",
    ],
)
def test_garbage_tokens_are_validation_errors(garbage: str) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        ReadAfter.parse(garbage)
    assert raised.value.status_code == 422 and raised.value.message.startswith("query.after:")


def test_an_lsn_token_is_satisfied_at_or_past_its_position() -> None:
    token = ReadAfter(document_id="d", lsn=1_000)
    assert not token.is_satisfied_by(IndexedPosition(committed_at=None, lsn=None))
    assert not token.is_satisfied_by(IndexedPosition(committed_at=datetime.now(UTC), lsn=999))
    assert token.is_satisfied_by(IndexedPosition(committed_at=None, lsn=1_000))
    assert token.is_satisfied_by(IndexedPosition(committed_at=None, lsn=5_000))


def test_a_timestamp_token_is_satisfied_at_or_past_its_time() -> None:
    at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    token = ReadAfter(document_id="d", committed_at=at)
    assert not token.is_satisfied_by(IndexedPosition(committed_at=None, lsn=10**12))
    assert not token.is_satisfied_by(IndexedPosition(committed_at=at.replace(minute=59, hour=9), lsn=1))
    assert token.is_satisfied_by(IndexedPosition(committed_at=at, lsn=1))

"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", checked like a receiver would."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from streams.webhook_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    delivery_headers,
    notification_body,
    sign,
    verify,
)
from tidewire.events import Notification, NotificationType

COMMITTED = datetime(2026, 1, 1, tzinfo=UTC)
NOTIFICATION = Notification.for_change(
    event_type=NotificationType.INDEXED,
    tenant_id="acme",
    document_id="doc-1",
    pipeline="documents",
    chunks=3,
    model="m",
    source_committed_at=COMMITTED,
    indexed_at=COMMITTED + timedelta(milliseconds=250),
    source_lsn=42,
)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("s3cret", 1_700_000_000, b"{}") == f"sha256={expected}"


def test_verify_accepts_the_signature_and_rejects_tampering_wrong_keys_and_stale_timestamps() -> None:
    body = notification_body(NOTIFICATION)
    signature = sign("k", 1000, body)
    assert verify("k", 1000, body, signature, now=1010)
    assert not verify("k", 1000, body + b" ", signature, now=1010)
    assert not verify("other", 1000, body, signature, now=1010)
    assert not verify("k", 1001, body, signature, now=1010)
    assert not verify("k", 1000, body, signature, now=1000 + 301)


def test_body_carries_the_public_fields() -> None:
    document = json.loads(notification_body(NOTIFICATION))
    assert document["type"] == "document.indexed"
    assert (document["tenant_id"], document["document_id"], document["chunks"]) == ("acme", "doc-1", 3)
    assert document["freshness_ms"] == 250
    assert document["id"] == "documents:doc-1:42:INDEXED"


def test_headers_sign_the_exact_body() -> None:
    body = notification_body(NOTIFICATION)
    headers = delivery_headers(NOTIFICATION, "k", body, 1234)
    assert headers[TIMESTAMP_HEADER] == "1234"
    assert verify("k", 1234, body, headers[SIGNATURE_HEADER], now=1234)

"""Signing webhook deliveries: what a receiver checks to trust a notification.

The signature is HMAC-SHA256, keyed with the endpoint's secret, over ``"<timestamp>." + body``
(the timestamp header's value, a dot, the raw request body), sent as
``X-Tidewire-Signature: sha256=<hex>``. Signing the timestamp with the body lets a receiver
reject replays of an old delivery (see :func:`verify`'s ``tolerance_s``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from tidewire.events import Notification

SIGNATURE_HEADER = "X-Tidewire-Signature"
TIMESTAMP_HEADER = "X-Tidewire-Timestamp"
EVENT_HEADER = "X-Tidewire-Event"
DELIVERY_HEADER = "X-Tidewire-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value of ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str,
    timestamp: int,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_s: float = 300,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` and the timestamp is recent enough."""
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def delivery_id(notification: Notification) -> str:
    """Stable id of a notification: a receiver de-duplicates redeliveries with it."""
    return f"{notification.pipeline}:{notification.document_id}:{notification.source_lsn or 0}:{notification.event_type.name}"


def notification_body(notification: Notification) -> bytes:
    """The JSON body of a delivery (the public field names of docs/events.md)."""
    document = {
        "id": delivery_id(notification),
        "type": notification.event_type.event_name,
        "tenant_id": notification.tenant_id,
        "document_id": notification.document_id,
        "pipeline": notification.pipeline,
        "chunks": notification.chunks,
        "model": notification.model,
        "source_committed_at": notification.source_committed_at.isoformat(),
        "indexed_at": notification.indexed_at.isoformat(),
        "freshness_ms": notification.freshness_ms,
        "source_lsn": notification.source_lsn,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def delivery_headers(notification: Notification, secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_HEADER: notification.event_type.event_name,
        DELIVERY_HEADER: delivery_id(notification),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }

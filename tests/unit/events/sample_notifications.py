"""A ``document.indexed`` notification for tests that only need one of a given tenant and document."""

from __future__ import annotations

from datetime import UTC, datetime

from tidewire.events.models import Notification, NotificationType

INDEXED_AT = datetime(2026, 11, 23, tzinfo=UTC)


def indexed_notification(tenant: str, document: str) -> Notification:
    """One chunk of ``document`` indexed for ``tenant`` (pipeline ``documents``, model ``m``)."""
    return Notification(
        event_type=NotificationType.INDEXED,
        tenant_id=tenant,
        document_id=document,
        pipeline="documents",
        chunks=1,
        model="m",
        source_committed_at=INDEXED_AT,
        indexed_at=INDEXED_AT,
        freshness_ms=5,
    )

"""Which notifications a batch's write outcomes make."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.notifications import notifications_for
from tidewire.events import NotificationType
from tidewire.pipeline_spec import PipelineSpec
from tidewire.vector_store import SourcePosition, WriteOutcome

PIPELINES = {"documents": PipelineSpec()}
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def outcome(
    tenant: str | None, *, previous: str | None = None, applied: bool = True, deleted: bool = False
) -> WriteOutcome:
    return WriteOutcome(
        pipeline="documents",
        tenant_id=tenant,
        document_id="doc-1",
        applied=applied,
        deleted=deleted,
        chunk_count=0 if deleted else 2,
        position=SourcePosition(lsn=42, committed_at=NOW),
        indexed_at=NOW,
        previous_tenant_id=previous,
    )


def sent(outcomes: list[WriteOutcome]) -> list[tuple[NotificationType, str, int]]:
    return [
        (notification.event_type, notification.tenant_id, notification.chunks)
        for notification in notifications_for(outcomes, PIPELINES, "model")
    ]


def test_a_document_moved_to_another_tenant_is_deleted_for_the_one_it_left() -> None:
    assert sent([outcome("beta", previous="alpha")]) == [
        (NotificationType.DELETED, "alpha", 0),
        (NotificationType.INDEXED, "beta", 2),
    ]


def test_a_write_within_the_same_tenant_or_of_a_new_document_notifies_once() -> None:
    assert sent([outcome("alpha", previous="alpha")]) == [(NotificationType.INDEXED, "alpha", 2)]
    assert sent([outcome("alpha")]) == [(NotificationType.INDEXED, "alpha", 2)]
    assert sent([outcome("alpha", previous="alpha", deleted=True)]) == [
        (NotificationType.DELETED, "alpha", 0)
    ]


def test_a_skipped_write_notifies_nobody_even_with_a_previous_tenant() -> None:
    assert sent([outcome("beta", previous="alpha", applied=False)]) == []

"""Planning a micro-batch: one change per document, the latest truncate, what needs embedding."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.batch_planning import is_stale, latest_changes, needs_embedding
from streams.debezium_decoding import RowDelete, RowUpsert, TableTruncate
from streams.messages import MessageRef
from tidewire.vector_store import SourcePosition, StoredVersion

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def upsert(document_id: str, lsn: int, offset: int, pipeline: str = "documents") -> RowUpsert:
    return RowUpsert(
        pipeline=pipeline,
        document_id=document_id,
        row={"id": document_id, "body": f"v{lsn}"},
        position=SourcePosition(lsn=lsn, committed_at=NOW),
        operation="update",
        ref=MessageRef("cdc.public.documents", 0, offset),
    )


def delete(document_id: str, lsn: int, offset: int) -> RowDelete:
    return RowDelete(
        pipeline="documents",
        document_id=document_id,
        tenant_id=None,
        position=SourcePosition(lsn=lsn, committed_at=NOW),
        ref=MessageRef("cdc.public.documents", 0, offset),
    )


def truncate(lsn: int, offset: int) -> TableTruncate:
    return TableTruncate(
        pipeline="documents",
        position=SourcePosition(lsn=lsn, committed_at=NOW),
        ref=MessageRef("cdc.public.documents", 0, offset),
    )


def test_the_latest_change_of_each_document_wins() -> None:
    plan = latest_changes([upsert("a", 10, 0), upsert("b", 11, 1), upsert("a", 12, 2), delete("b", 13, 3)])
    assert [(u.document_id, u.position.lsn) for u in plan.upserts] == [("a", 12)]
    assert [(d.document_id, d.position.lsn) for d in plan.deletes] == [("b", 13)]
    assert plan.superseded == 2


def test_an_older_replayed_change_later_in_the_batch_does_not_win() -> None:
    plan = latest_changes([upsert("a", 20, 5), upsert("a", 10, 6)])
    assert [u.position.lsn for u in plan.upserts] == [20]


def test_equal_positions_are_ordered_by_offset() -> None:
    plan = latest_changes([upsert("a", 10, 1), delete("a", 10, 2)])
    assert plan.upserts == [] and len(plan.deletes) == 1


def test_same_id_in_two_pipelines_are_two_documents() -> None:
    plan = latest_changes([upsert("a", 1, 0), upsert("a", 2, 1, pipeline="other")])
    assert len(plan.upserts) == 2


def test_the_latest_truncate_per_pipeline_is_kept_next_to_the_row_changes() -> None:
    plan = latest_changes([truncate(5, 0), upsert("a", 6, 1), truncate(7, 2)])
    assert [t.position.lsn for t in plan.truncates] == [7]
    assert len(plan.upserts) == 1


def test_embedding_is_skipped_only_for_the_same_text_of_a_live_document() -> None:
    stored = StoredVersion(text_hash="h", lsn=1, deleted=False, chunk_count=2)
    assert not needs_embedding("h", stored)
    assert needs_embedding("other", stored)
    assert needs_embedding("h", None)
    assert needs_embedding("h", StoredVersion(text_hash="h", lsn=1, deleted=True, chunk_count=0))


def test_a_change_older_than_the_stored_version_is_stale() -> None:
    stored = StoredVersion(text_hash="h", lsn=50, deleted=False, chunk_count=1)
    assert is_stale(49, stored)
    assert not is_stale(50, stored)  # the very same change again: applied idempotently
    assert not is_stale(49, None)

"""Ingest: which pipeline an event targets, latest-wins per document, the SQL it runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.errors import PoisonEventError
from streams.ingest_agent import (
    IngestWrite,
    delete_statement,
    latest_per_document,
    newer_than_their_deletion,
    resolve_pipeline,
    upsert_statement,
)
from streams.messages import MessageRef, RawMessage
from tidewire.events import FailureStage, IngestDocument
from tidewire.pipeline_spec import PipelineSpec

DOCS = PipelineSpec()
OTHER = PipelineSpec(name="other", source_table="app.notes", tenant_column=None)
MESSAGE = RawMessage(MessageRef("tidewire.ingest", 0, 0), b"a", b"avro")


def event(document_id: str, day: int, pipeline: str | None = None) -> IngestDocument:
    return IngestDocument(
        document_id=document_id, event_time=datetime(2026, 1, day, tzinfo=UTC), pipeline=pipeline
    )


def test_the_event_names_its_pipeline_or_gets_the_one_of_public_documents() -> None:
    assert resolve_pipeline(event("a", 1), [OTHER, DOCS]) is DOCS
    assert resolve_pipeline(event("a", 1, "other"), [DOCS, OTHER]) is OTHER
    with pytest.raises(PoisonEventError) as caught:
        resolve_pipeline(event("a", 1, "nope"), [DOCS, OTHER])
    assert caught.value.stage is FailureStage.VALIDATE and "known: documents, other" in caught.value.reason


def test_with_no_pipeline_of_public_documents_only_a_single_pipeline_is_the_default() -> None:
    assert resolve_pipeline(event("a", 1), [OTHER]) is OTHER
    third = PipelineSpec(name="third", source_table="app.pages")
    with pytest.raises(PoisonEventError, match=r"names no pipeline and none reads public\.documents"):
        resolve_pipeline(event("a", 1), [OTHER, third])


def test_an_upsert_older_than_its_documents_deletion_is_dropped() -> None:
    deleted_at = {"a": datetime(2026, 1, 2, tzinfo=UTC)}
    upserts = [event("a", 1), event("b", 1)]
    assert [e.document_id for e in newer_than_their_deletion(upserts, deleted_at)] == ["b"]
    # As new as the delete: consumed after it, the upsert wins (as on rows, the later event on a tie).
    assert newer_than_their_deletion([event("a", 2), event("a", 3)], deleted_at) == [
        event("a", 2),
        event("a", 3),
    ]


def test_latest_event_time_wins_per_document() -> None:
    writes = [
        IngestWrite(DOCS, event("a", 2), MESSAGE),
        IngestWrite(DOCS, event("a", 1), MESSAGE),
        IngestWrite(OTHER, event("a", 1), MESSAGE),
    ]
    latest = latest_per_document(writes)
    assert [(w.spec.name, w.event.event_time.day) for w in latest] == [("documents", 2), ("other", 1)]


def test_statements_only_overwrite_older_rows() -> None:
    upsert = upsert_statement(DOCS).as_string(None)
    assert upsert.startswith(
        'INSERT INTO "public"."documents" AS t ("id", "tenant_id", "title", "body", "metadata", "updated_at")'
    )
    assert upsert.endswith("WHERE t.updated_at <= EXCLUDED.updated_at")
    assert '"tenant_id"' not in upsert_statement(OTHER).as_string(None)
    assert (
        delete_statement(OTHER).as_string(None)
        == 'DELETE FROM "app"."notes" WHERE "id" = %s AND updated_at <= %s'
    )

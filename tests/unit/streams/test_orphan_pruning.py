"""Pruning orphaned documents: where their deletes are placed, which key types can be compared."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.orphan_pruning import OrphanDocument, check_prunable_key_type
from tidewire.errors import ConfigurationError
from tidewire.pipeline_spec import PipelineSpec

SEEN_AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def test_the_delete_sorts_after_the_last_indexed_change_and_before_any_later_one() -> None:
    orphan = OrphanDocument(document_id="doc-1", tenant_id="acme", source_lsn=0x16B3748, seen_at=SEEN_AT)

    delete = orphan.delete("documents")

    assert delete.pipeline == "documents"
    assert delete.document_id == "doc-1"
    assert delete.tenant_id == "acme"
    # A replay of the last indexed change (same LSN) loses to it; the next WAL record starts further on.
    assert delete.position.lsn == 0x16B3748 + 1
    assert delete.position.committed_at == SEEN_AT


@pytest.mark.parametrize("key_type", ["text", "character varying", "integer", "bigint", "smallint", "uuid"])
def test_keys_whose_text_form_is_the_document_id_can_be_pruned(key_type: str) -> None:
    check_prunable_key_type(PipelineSpec(), key_type)


@pytest.mark.parametrize("key_type", ["numeric", "character", "timestamp with time zone", "bytea", "jsonb"])
def test_keys_rendered_otherwise_by_the_connector_are_refused_with_the_supported_types(key_type: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_prunable_key_type(PipelineSpec(), key_type)

    message = str(refused.value)
    assert f"'id' is {key_type}" in message
    assert "uuid" in message and "\n" not in message


def test_a_missing_table_or_key_column_names_the_table_and_the_column() -> None:
    spec = PipelineSpec(name="articles", source_table="public.articles", primary_key="slug")

    with pytest.raises(ConfigurationError, match=r"public\.articles does not exist or has no column 'slug'"):
        check_prunable_key_type(spec, None)

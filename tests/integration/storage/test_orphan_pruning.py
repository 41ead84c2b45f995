"""Pruning documents whose source rows are gone: only those, at a position that keeps latest-wins."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool

from streams.orphan_pruning import prune_orphans
from tests.integration.conftest import fresh_test_prefix
from tests.integration.storage.conftest import StoreRunner
from tests.integration.storage.test_vector_store import stored_chunks, upsert
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import Settings
from tidewire.vector_store import VectorStore


def test_only_documents_without_a_source_row_are_pruned_and_a_replay_cannot_bring_them_back(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    prefix = fresh_test_prefix()
    gone, also_gone, present = f"{prefix}gone", f"{prefix}also-gone", f"{prefix}present"
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO public.documents (id, tenant_id, title, body) VALUES (%s, 'acme', 't', 'b')",
            (present,),
        )
    spec = PipelineSpec(name=pipeline_name)

    async def index_all(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        return await store.write_batch(
            [
                upsert(pipeline_name, gone, 100, ["one", "two"], tenant="acme"),
                upsert(pipeline_name, also_gone, 120, ["three"], tenant="beta"),
                upsert(pipeline_name, present, 110, ["four"], tenant="acme"),
            ]
        )

    assert all(outcome.applied for outcome in run_with_store(index_all))

    looked = prune_orphans(settings, spec, dry_run=True)
    assert looked.orphans == sorted([gone, also_gone])
    assert (looked.removed, looked.notified) == ([], 0)
    assert len(stored_chunks(settings, pipeline_name, gone)) == 2  # a dry run removes nothing

    pruned = prune_orphans(settings, spec)
    assert pruned.orphans == sorted([gone, also_gone])
    assert sorted(pruned.removed) == sorted([gone, also_gone])
    assert (pruned.kept, pruned.notified) == ([], 2)
    assert stored_chunks(settings, pipeline_name, gone) == []
    assert stored_chunks(settings, pipeline_name, also_gone) == []
    assert len(stored_chunks(settings, pipeline_name, present)) == 1

    async def replay_then_change(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        versions = await store.stored_versions([(pipeline_name, gone)])
        # The very change the index last had, consumed again (a replay): it must not resurrect it.
        replayed = await store.write_batch([upsert(pipeline_name, gone, 100, ["one", "two"], tenant="acme")])
        # A later change of the row (it was written again): indexed as usual.
        written_again = await store.write_batch([upsert(pipeline_name, gone, 150, ["five"], tenant="acme")])
        return versions[(pipeline_name, gone)], replayed[0], written_again[0]

    tombstone, replayed, written_again = run_with_store(replay_then_change)
    assert (tombstone.deleted, tombstone.lsn) == (True, 101)
    assert not replayed.applied
    assert written_again.applied and written_again.chunk_count == 1

    # A pruned document is not found again; one that has its row never is.
    assert prune_orphans(settings, spec, document_ids=[also_gone, present], dry_run=True).orphans == []

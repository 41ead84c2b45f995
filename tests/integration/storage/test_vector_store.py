"""VectorStore against the real Postgres: latest-wins, deletes, truncates, exact vectors, round trips."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy
import psycopg
import psycopg_pool
import pytest
from pgvector.psycopg import register_vector, register_vector_async

from tests.integration.storage.conftest import StoreRunner, open_pool, tenant_partition
from tests.integration.storage.wire_counter import RoundTripCounter
from tidewire.errors import InvalidVectorWriteError, VectorStoreUnavailableError
from tidewire.settings import Settings
from tidewire.vector_store import _WRITE_BATCH_SQL as WRITE_BATCH_SQL
from tidewire.vector_store import (
    ChunkVector,
    DocumentDelete,
    DocumentUpsert,
    SourcePosition,
    VectorStore,
    plan_batch,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def position(lsn: int) -> SourcePosition:
    return SourcePosition(lsn=lsn, committed_at=T0 + timedelta(milliseconds=lsn))


def unit_vector(seed: int) -> numpy.ndarray:
    vector = numpy.random.default_rng(seed).standard_normal(384).astype(numpy.float32)
    return vector / numpy.linalg.norm(vector)


def chunks_of(texts: list[str], seed: int = 0) -> list[ChunkVector]:
    return [ChunkVector(i, text, unit_vector(seed * 1000 + i)) for i, text in enumerate(texts)]


def upsert(
    pipeline: str,
    document_id: str,
    lsn: int,
    texts: list[str] | None,
    *,
    metadata: dict[str, Any] | None = None,
    tenant: str = "tenant-a",
    seed: int = 0,
) -> DocumentUpsert:
    text = "".join(texts or [])
    return DocumentUpsert(
        pipeline=pipeline,
        tenant_id=tenant,
        document_id=document_id,
        position=position(lsn),
        text_hash=hashlib.sha256(text.encode()).hexdigest(),
        metadata=metadata or {"lsn": lsn},
        chunks=None if texts is None else chunks_of(texts, seed),
        model=MODEL,
    )


def delete(pipeline: str, document_id: str, lsn: int) -> DocumentDelete:
    return DocumentDelete(pipeline=pipeline, tenant_id=None, document_id=document_id, position=position(lsn))


def stored_chunks(settings: Settings, pipeline: str, document_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.postgres.dsn(), row_factory=psycopg.rows.dict_row) as connection:
        register_vector(connection)
        return connection.execute(
            "SELECT chunk_index, chunk_text, embedding, metadata, tenant_id, model, source_lsn "
            "FROM tidewire_chunks WHERE pipeline = %s AND document_id = %s ORDER BY chunk_index",
            (pipeline, document_id),
        ).fetchall()


def test_upsert_then_read_back(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    write = upsert(pipeline_name, "doc-1", 100, ["alpha ", "beta"], metadata={"kind": "note"})

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        outcomes = await store.write_batch([write])
        return outcomes, await store.stored_versions([(pipeline_name, "doc-1"), (pipeline_name, "nope")])

    (outcome,), versions = run_with_store(body)
    assert (outcome.applied, outcome.deleted, outcome.chunk_count, outcome.tenant_id) == (
        True,
        False,
        2,
        "tenant-a",
    )
    assert outcome.position == write.position
    assert outcome.indexed_at.tzinfo is not None
    assert list(versions) == [(pipeline_name, "doc-1")]
    version = versions[(pipeline_name, "doc-1")]
    assert (version.text_hash, version.lsn, version.deleted, version.chunk_count) == (
        write.text_hash,
        100,
        False,
        2,
    )
    rows = stored_chunks(settings, pipeline_name, "doc-1")
    assert [row["chunk_text"] for row in rows] == ["alpha ", "beta"]
    assert all(row["metadata"] == {"kind": "note"} and row["tenant_id"] == "tenant-a" for row in rows)
    assert all(row["model"] == MODEL and row["source_lsn"] == 100 for row in rows)


def test_vectors_round_trip_exactly_as_float32(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    write = upsert(pipeline_name, "doc-1", 1, ["a", "b", "c"], seed=7)
    run_with_store(lambda store, _: store.write_batch([write]))
    rows = stored_chunks(settings, pipeline_name, "doc-1")
    assert write.chunks is not None
    for row, chunk in zip(rows, write.chunks, strict=True):
        stored = row["embedding"].to_numpy()
        assert stored.dtype == numpy.float32
        assert numpy.array_equal(stored, chunk.embedding)


def test_latest_wins_and_same_lsn_replay_is_idempotent(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    newer = upsert(pipeline_name, "doc-1", 200, ["new text"], seed=2)
    older = upsert(pipeline_name, "doc-1", 100, ["old text", "more old"], seed=1)

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        first = await store.write_batch([newer])
        skipped = await store.write_batch([older])
        replayed = await store.write_batch([newer])
        return first, skipped, replayed

    (first,), (skipped,), (replayed,) = run_with_store(body)
    assert first.applied and replayed.applied
    assert not skipped.applied
    # An outcome describes the document as stored after the write: the newer version.
    assert (skipped.chunk_count, skipped.deleted) == (1, False)
    rows = stored_chunks(settings, pipeline_name, "doc-1")
    assert [row["chunk_text"] for row in rows] == ["new text"]
    assert rows[0]["source_lsn"] == 200


def test_shorter_text_removes_surplus_chunks(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    long = upsert(pipeline_name, "doc-1", 1, ["one", "two", "three", "four"])
    short = upsert(pipeline_name, "doc-1", 2, ["uno", "dos"], seed=3)

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch([long])
        return await store.write_batch([short])

    (outcome,) = run_with_store(body)
    assert outcome.chunk_count == 2
    rows = stored_chunks(settings, pipeline_name, "doc-1")
    assert [row["chunk_text"] for row in rows] == ["uno", "dos"]
    assert short.chunks is not None
    assert numpy.array_equal(rows[1]["embedding"].to_numpy(), short.chunks[1].embedding)


def test_empty_text_leaves_no_chunks(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch([upsert(pipeline_name, "doc-1", 1, ["text"])])
        return await store.write_batch([upsert(pipeline_name, "doc-1", 2, [])])

    (outcome,) = run_with_store(body)
    assert (outcome.applied, outcome.deleted, outcome.chunk_count) == (True, False, 0)
    assert stored_chunks(settings, pipeline_name, "doc-1") == []


def test_unchanged_text_keeps_vectors_and_updates_metadata(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    original = upsert(pipeline_name, "doc-1", 1, ["keep ", "me"], metadata={"v": 1})
    metadata_only = upsert(pipeline_name, "doc-1", 2, None, metadata={"v": 2}, tenant="tenant-b")

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch([original])
        before = stored_chunks(settings, pipeline_name, "doc-1")
        outcomes = await store.write_batch([metadata_only])
        return before, outcomes, await store.stored_versions([(pipeline_name, "doc-1")])

    before, (outcome,), versions = run_with_store(body)
    assert (outcome.applied, outcome.chunk_count) == (True, 2)
    after = stored_chunks(settings, pipeline_name, "doc-1")
    assert [row["chunk_text"] for row in after] == ["keep ", "me"]
    for old, new in zip(before, after, strict=True):
        assert numpy.array_equal(old["embedding"].to_numpy(), new["embedding"].to_numpy())
    assert all(row["metadata"] == {"v": 2} and row["tenant_id"] == "tenant-b" for row in after)
    assert all(row["source_lsn"] == 2 for row in after)
    assert versions[(pipeline_name, "doc-1")].lsn == 2


def test_delete_leaves_tombstone_and_older_upsert_cannot_resurrect(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch([upsert(pipeline_name, "doc-1", 10, ["a", "b"])])
        deleted = await store.write_batch([delete(pipeline_name, "doc-1", 20)])
        resurrect = await store.write_batch([upsert(pipeline_name, "doc-1", 15, ["a", "b"])])
        return deleted, resurrect, await store.stored_versions([(pipeline_name, "doc-1")])

    (deleted,), (resurrect,), versions = run_with_store(body)
    # The delete event has only the key; the tenant comes from the stored version.
    assert (deleted.applied, deleted.deleted, deleted.chunk_count, deleted.tenant_id) == (
        True,
        True,
        0,
        "tenant-a",
    )
    assert (resurrect.applied, resurrect.deleted, resurrect.chunk_count) == (False, True, 0)
    version = versions[(pipeline_name, "doc-1")]
    assert (version.deleted, version.lsn, version.chunk_count, version.text_hash) == (True, 20, 0, "")
    assert stored_chunks(settings, pipeline_name, "doc-1") == []


def test_delete_of_unknown_document_still_guards_against_older_upserts(
    run_with_store: StoreRunner[Any], pipeline_name: str
) -> None:
    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        deleted = await store.write_batch([delete(pipeline_name, "ghost", 50)])
        late = await store.write_batch([upsert(pipeline_name, "ghost", 40, ["boo"])])
        return deleted, late

    (deleted,), (late,) = run_with_store(body)
    assert (deleted.applied, deleted.deleted, deleted.tenant_id) == (True, True, None)
    assert not late.applied


def test_several_writes_of_one_document_in_one_batch_apply_in_lsn_order(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    # Input order is not LSN order: the store sorts them.
    batch = [
        upsert(pipeline_name, "doc-1", 30, None, metadata={"v": 3}),
        upsert(pipeline_name, "doc-1", 10, ["first", "version", "long"], metadata={"v": 1}),
        upsert(pipeline_name, "doc-2", 5, ["other"]),
        upsert(pipeline_name, "doc-1", 20, ["second"], metadata={"v": 2}, seed=9),
        delete(pipeline_name, "doc-2", 6),
        upsert(pipeline_name, "doc-2", 7, ["back"], seed=4),
    ]

    outcomes = run_with_store(lambda store, _: store.write_batch(batch))
    assert [(o.document_id, o.position.lsn) for o in outcomes] == [
        (w.document_id, w.position.lsn) for w in batch
    ]
    assert all(o.applied for o in outcomes)
    assert [o.chunk_count for o in outcomes] == [1, 3, 1, 1, 0, 1]
    assert [o.deleted for o in outcomes] == [False, False, False, False, True, False]
    # doc-1: the lsn-20 text with the lsn-30 metadata (the text was unchanged at 30).
    rows = stored_chunks(settings, pipeline_name, "doc-1")
    assert [(row["chunk_text"], row["metadata"], row["source_lsn"]) for row in rows] == [
        ("second", {"v": 3}, 30)
    ]
    assert [row["chunk_text"] for row in stored_chunks(settings, pipeline_name, "doc-2")] == ["back"]


def test_truncate_tombstones_older_documents_only(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch(
            [
                upsert(pipeline_name, "old-1", 10, ["a"]),
                upsert(pipeline_name, "old-2", 11, ["b", "c"]),
                delete(pipeline_name, "gone", 12),
                upsert(pipeline_name, "after", 30, ["d"]),
            ]
        )
        removed = await store.truncate(pipeline_name, position(20))
        replay = await store.write_batch([upsert(pipeline_name, "old-1", 10, ["a"])])
        keys = [(pipeline_name, key) for key in ("old-1", "old-2", "gone", "after")]
        return removed, replay, await store.stored_versions(keys)

    removed, (replay,), versions = run_with_store(body)
    assert removed == 2
    assert not replay.applied
    assert {key[1]: v.deleted for key, v in versions.items()} == {
        "old-1": True,
        "old-2": True,
        "gone": True,
        "after": False,
    }
    assert stored_chunks(settings, pipeline_name, "old-2") == []
    assert [row["chunk_text"] for row in stored_chunks(settings, pipeline_name, "after")] == ["d"]


def test_keeping_the_vectors_a_truncate_removed_reports_a_live_document_with_no_chunks(
    run_with_store: StoreRunner[Any], pipeline_name: str
) -> None:
    """What a worker that read the stored version before another worker's truncate sees when it writes
    the unchanged text (chunks None): applied, live, no chunks. The worker then embeds it again."""

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch([upsert(pipeline_name, "reloaded", 10, ["a"])])
        await store.truncate(pipeline_name, position(20))
        return await store.write_batch([upsert(pipeline_name, "reloaded", 30, None)])

    (kept,) = run_with_store(body)
    assert (kept.applied, kept.deleted, kept.chunk_count) == (True, False, 0)


def truncate_position(settings: Settings, pipeline: str) -> int | None:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        row = connection.execute(
            "SELECT truncated_lsn FROM tidewire_pipeline_truncations WHERE pipeline = %s", (pipeline,)
        ).fetchone()
    return None if row is None else int(row[0])


def test_older_writes_of_unknown_documents_after_a_truncate_are_skipped(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    """The race: the truncate (no key, one partition) is applied before an older insert of a row that
    was never indexed (another partition). The row is gone at the source, so nothing may appear."""

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        removed = await store.truncate(pipeline_name, position(20))
        outcomes = await store.write_batch(
            [
                upsert(pipeline_name, "late", 15, ["committed before the truncate"]),
                delete(pipeline_name, "late-delete", 12),
                upsert(pipeline_name, "at-truncate", 20, ["same position as the truncate"]),
                upsert(pipeline_name, "after", 30, ["written after the truncate"]),
            ]
        )
        keys = [(pipeline_name, key) for key in ("late", "late-delete", "at-truncate", "after")]
        return removed, outcomes, await store.stored_versions(keys)

    removed, outcomes, versions = run_with_store(body)
    assert removed == 0
    assert [(o.document_id, o.applied) for o in outcomes] == [
        ("late", False),
        ("late-delete", False),
        ("at-truncate", True),
        ("after", True),
    ]
    assert (outcomes[0].deleted, outcomes[0].chunk_count) == (False, 0)
    # No state row either: a later, newer insert of "late" is indexed as a new document.
    assert sorted(key[1] for key in versions) == ["after", "at-truncate"]
    assert stored_chunks(settings, pipeline_name, "late") == []
    assert [row["chunk_text"] for row in stored_chunks(settings, pipeline_name, "after")] == [
        "written after the truncate"
    ]
    assert truncate_position(settings, pipeline_name) == 20


def test_the_highest_truncate_position_is_kept(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.truncate(pipeline_name, position(50))
        # A replayed older truncate must not lower the position and let older writes back in.
        await store.truncate(pipeline_name, position(20))
        return await store.write_batch(
            [
                upsert(pipeline_name, "between", 40, ["between the truncates"]),
                upsert(f"{pipeline_name}-other", "x", 40, None),
            ]
        )

    between, other = run_with_store(body)
    assert not between.applied
    # Another pipeline's writes are not held back by this pipeline's truncate.
    assert other.applied
    assert truncate_position(settings, pipeline_name) == 50
    assert stored_chunks(settings, pipeline_name, "between") == []
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(
            "DELETE FROM tidewire_document_state WHERE pipeline = %s", (f"{pipeline_name}-other",)
        )


async def _wait_until_blocked_on_a_lock(
    pool: psycopg_pool.AsyncConnectionPool, what: str, lock: str = "advisory"
) -> None:
    """Until another session waits for a lock of this kind: ``advisory`` (the truncate lock of
    migration 0006), ``transactionid`` (a row another transaction changed and has not committed)."""
    async with pool.connection() as connection:
        for _ in range(200):
            cursor = await connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = %s"
                " AND pid <> pg_backend_pid() AND datname = current_database()",
                (lock,),
            )
            row = await cursor.fetchone()
            await connection.rollback()
            if row is not None and row[0] > 0:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{what} never waited for a lock ({lock})")


def test_a_write_batch_during_an_uncommitted_truncate_waits_and_then_skips_older_writes(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    """Two workers at the same moment: while the truncate's transaction is open, a batch with an
    older insert of a new document waits for it, then sees its position (under READ COMMITTED it
    would otherwise miss the uncommitted position, and the truncate would miss its row)."""

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        async with await psycopg.AsyncConnection.connect(settings.postgres.dsn()) as truncating:
            await truncating.execute(
                "SELECT tidewire_truncate_pipeline(%s, %s, %s)",
                (pipeline_name, 20, position(20).committed_at),
            )
            write = asyncio.create_task(
                store.write_batch([upsert(pipeline_name, "late", 15, ["before the truncate"])])
            )
            await _wait_until_blocked_on_a_lock(pool, "the write batch")
            assert not write.done()
            await truncating.commit()
        return await write

    (late,) = run_with_store(body)
    assert not late.applied
    assert stored_chunks(settings, pipeline_name, "late") == []


def test_a_truncate_during_an_uncommitted_write_batch_waits_and_then_removes_its_documents(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    """The other order: the batch's transaction is open when the truncate comes; the truncate waits
    for it and then tombstones what it wrote."""
    batch = plan_batch([upsert(pipeline_name, "late", 15, ["before the truncate"])])

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        async with await psycopg.AsyncConnection.connect(settings.postgres.dsn()) as writing:
            await register_vector_async(writing)
            # The very statement VectorStore.write_batch sends, in a transaction left open.
            await writing.execute(WRITE_BATCH_SQL, batch)
            truncate = asyncio.create_task(store.truncate(pipeline_name, position(20)))
            await _wait_until_blocked_on_a_lock(pool, "the truncate")
            assert not truncate.done()
            await writing.commit()
        return await truncate, await store.stored_versions([(pipeline_name, "late")])

    removed, versions = run_with_store(body)
    assert removed == 1
    assert versions[(pipeline_name, "late")].deleted
    assert stored_chunks(settings, pipeline_name, "late") == []


def test_invalid_vectors_are_refused_before_any_write(
    run_with_store: StoreRunner[Any], pipeline_name: str
) -> None:
    bad = numpy.full(384, numpy.nan, dtype=numpy.float32)
    writes = [
        upsert(pipeline_name, "doc-ok", 1, ["fine"]),
        DocumentUpsert(
            pipeline_name, "t", "doc-nan", position(2), "h", {}, [ChunkVector(0, "x", bad)], MODEL
        ),
    ]

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        with pytest.raises(InvalidVectorWriteError, match="NaN"):
            await store.write_batch(writes)
        short = [ChunkVector(0, "x", numpy.ones(3, dtype=numpy.float32))]
        with pytest.raises(InvalidVectorWriteError, match=r"shape \(3,\)"):
            await store.write_batch(
                [DocumentUpsert(pipeline_name, "t", "d", position(3), "h", {}, short, MODEL)]
            )
        return await store.stored_versions([(pipeline_name, "doc-ok")])

    assert run_with_store(body) == {}


def test_unreachable_database_raises_retryable_error(pipeline_name: str) -> None:

    async def body() -> None:
        # Port 9 (discard) on loopback: nothing listens, the connection is refused.
        pool = psycopg_pool.AsyncConnectionPool(
            "host=127.0.0.1 port=9 dbname=x user=x connect_timeout=2",
            min_size=0,
            max_size=1,
            open=False,
            timeout=2,
        )
        await pool.open()
        try:
            await VectorStore(pool).write_batch([upsert(pipeline_name, "doc-1", 1, ["a"])])
        finally:
            await pool.close()

    with pytest.raises(VectorStoreUnavailableError, match="unreachable") as caught:
        asyncio.run(body())
    assert caught.value.retry_after_s > 0


def _wire_dsn(settings: Settings, port: int) -> str:
    postgres = settings.postgres
    return (
        f"host=127.0.0.1 port={port} dbname={postgres.database} user={postgres.user} "
        f"password={postgres.password.get_secret_value()} sslmode=disable gssencmode=disable"
    )


def test_round_trip_counter_sees_transaction_round_trips(settings: Settings, local_stack: object) -> None:
    """The counter itself: a statement inside a transaction block costs BEGIN, the statement and COMMIT."""

    async def body() -> tuple[int, int]:
        async with (
            RoundTripCounter(settings.postgres.host, settings.postgres.port) as counter,
            open_pool(_wire_dsn(settings, counter.port)) as pool,
            pool.connection() as connection,
        ):
            start = counter.ready_for_query
            async with connection.transaction():
                await connection.execute("SELECT 1")
                await connection.execute("SELECT 2")
            in_transaction = counter.ready_for_query - start
            await connection.set_autocommit(True)
            start = counter.ready_for_query
            await connection.execute("SELECT 1")
            return in_transaction, counter.ready_for_query - start

    assert asyncio.run(body()) == (4, 1)


def test_batch_of_256_documents_is_one_round_trip(settings: Settings, pipeline_name: str) -> None:

    batch = [
        upsert(pipeline_name, f"doc-{i}", 1000 + i, ["one ", "two ", "three"], seed=i) for i in range(256)
    ]
    batch += [delete(pipeline_name, "doc-0", 5000), upsert(pipeline_name, "doc-1", 5001, None)]

    async def body() -> tuple[int, int, list[Any]]:
        async with (
            RoundTripCounter(settings.postgres.host, settings.postgres.port) as counter,
            open_pool(_wire_dsn(settings, counter.port)) as pool,
        ):
            store = VectorStore(pool)
            await store.stored_versions([(pipeline_name, "warm-up")])  # first use: pgvector type lookup
            await store.ensure_tenant_partitions({"tenant-a"})  # first write of a tenant: its partition
            start = counter.ready_for_query
            outcomes = await store.write_batch(batch)
            write_trips = counter.ready_for_query - start
            start = counter.ready_for_query
            await store.stored_versions([(pipeline_name, w.document_id) for w in batch])
            return write_trips, counter.ready_for_query - start, outcomes

    write_trips, read_trips, outcomes = asyncio.run(body())
    assert (write_trips, read_trips) == (1, 1)
    assert len(outcomes) == 258 and all(o.applied for o in outcomes)
    with psycopg.connect(settings.postgres.dsn()) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM tidewire_chunks WHERE pipeline = %s", (pipeline_name,)
        ).fetchone() or (0,)
    assert count == 255 * 3


def _partition_of(settings: Settings, pipeline: str, document_id: str) -> set[tuple[str, str]]:
    """(partition, tenant) of each stored chunk of the document."""
    with psycopg.connect(settings.postgres.dsn()) as connection:
        rows = connection.execute(
            "SELECT tableoid::regclass::text, tenant_id FROM tidewire_chunks WHERE pipeline = %s AND document_id = %s",
            (pipeline, document_id),
        ).fetchall()
    return {(table, tenant) for table, tenant in rows}


def test_a_tenants_first_write_gives_it_itstenant_partition(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    tenant = f"tenant-{pipeline_name}"

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch([upsert(pipeline_name, "doc-1", 1, ["one ", "two"], tenant=tenant)])
        # Another store (another process) asks again and finds it made.
        return await VectorStore(pool).ensure_tenant_partitions({tenant})

    made_again = run_with_store(body)
    assert _partition_of(settings, pipeline_name, "doc-1") == {(tenant_partition(tenant), tenant)}
    assert made_again == []


def test_a_tenants_rows_in_the_default_partition_move_into_its_own(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    tenant = f"tenant-{pipeline_name}"
    with psycopg.connect(settings.postgres.dsn()) as connection:
        register_vector(connection)
        # A writer that did not ask for a partition first: the row lands in the default partition.
        connection.execute(
            "INSERT INTO tidewire_chunks (pipeline, document_id, chunk_index, tenant_id, chunk_text, "
            "embedding, model, source_lsn, source_committed_at) VALUES (%s, 'doc-1', 0, %s, 'x', %s, 'm', 1, now())",
            (pipeline_name, tenant, unit_vector(1)),
        )
    assert _partition_of(settings, pipeline_name, "doc-1") == {("tidewire_chunks_default", tenant)}

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        return await store.ensure_tenant_partitions({tenant})

    assert run_with_store(body) == [tenant]
    assert _partition_of(settings, pipeline_name, "doc-1") == {(tenant_partition(tenant), tenant)}


def test_new_text_under_a_new_tenant_leaves_nothing_under_the_old_one(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.write_batch([upsert(pipeline_name, "doc-1", 1, ["a ", "b ", "c"], tenant="tenant-a")])
        return await store.write_batch(
            [upsert(pipeline_name, "doc-1", 2, ["x ", "y"], tenant="tenant-b", seed=2)]
        )

    (moved,) = run_with_store(body)
    assert (moved.applied, moved.chunk_count, moved.tenant_id) == (True, 2, "tenant-b")
    rows = stored_chunks(settings, pipeline_name, "doc-1")
    assert [(row["chunk_index"], row["chunk_text"], row["tenant_id"]) for row in rows] == [
        (0, "x ", "tenant-b"),
        (1, "y", "tenant-b"),
    ]
    assert _partition_of(settings, pipeline_name, "doc-1") == {(tenant_partition("tenant-b"), "tenant-b")}


def test_each_write_reports_the_tenant_the_live_document_had_before_it(
    run_with_store: StoreRunner[Any], pipeline_name: str
) -> None:
    """Migration 0012: the tenant a write moved a live document from, read after the batch's earlier
    writes of it; none for a new document, one that was deleted, or a skipped write."""

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        first = await store.write_batch(
            [
                upsert(pipeline_name, "doc-1", 1, ["a"], tenant="tenant-a"),
                upsert(pipeline_name, "doc-1", 2, ["a"], tenant="tenant-b"),
                upsert(pipeline_name, "doc-1", 3, ["b"], tenant="tenant-c", seed=3),
            ]
        )
        later = await store.write_batch(
            [
                upsert(pipeline_name, "doc-1", 2, ["old"], tenant="tenant-a"),  # older: skipped
                upsert(pipeline_name, "doc-1", 4, ["b"], tenant="tenant-c", seed=3),
                delete(pipeline_name, "doc-1", 5),
            ]
        )
        revived = await store.write_batch(
            [upsert(pipeline_name, "doc-1", 6, ["c"], tenant="tenant-d", seed=6)]
        )
        return first + later + revived

    outcomes = run_with_store(body)
    assert [(o.position.lsn, o.applied, o.previous_tenant_id, o.left_tenant) for o in outcomes] == [
        (1, True, None, None),
        (2, True, "tenant-a", "tenant-a"),
        (3, True, "tenant-b", "tenant-b"),
        (2, False, None, None),
        (4, True, "tenant-c", None),
        (5, True, "tenant-c", None),
        (6, True, None, None),
    ]


def test_a_write_batch_leaves_other_tenants_partitions_alone(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    """Migration 0010: the batch's DELETE and UPDATE of chunks are planned on its own tenants'
    partitions only. Another tenant's partition, locked against everything, does not stop it (before
    0010 the batch waited for that lock, as it read every partition)."""
    writer, bystander = f"writer-{pipeline_name}", f"bystander-{pipeline_name}"

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.ensure_tenant_partitions({writer, bystander})
        await store.write_batch(
            [
                upsert(pipeline_name, "shrinks", 1, ["a ", "b ", "c"], tenant=writer),
                upsert(pipeline_name, "same-text", 2, ["kept"], tenant=writer, metadata={"v": 1}),
            ]
        )
        async with await psycopg.AsyncConnection.connect(settings.postgres.dsn()) as locking:
            await locking.execute(f"LOCK TABLE {tenant_partition(bystander)} IN ACCESS EXCLUSIVE MODE")
            writes = [
                upsert(pipeline_name, "shrinks", 3, ["a"], tenant=writer),  # removes chunks 1 and 2
                upsert(pipeline_name, "same-text", 4, None, tenant=writer, metadata={"v": 2}),  # refreshes
                delete(pipeline_name, "never-seen", 5),
            ]
            try:
                return await asyncio.wait_for(store.write_batch(writes), timeout=20)
            except TimeoutError:
                raise AssertionError("the write batch waited for another tenant's partition") from None
            finally:
                await locking.rollback()

    outcomes = run_with_store(body)
    assert [outcome.applied for outcome in outcomes] == [True, True, True]
    assert [row["chunk_text"] for row in stored_chunks(settings, pipeline_name, "shrinks")] == ["a"]
    assert [row["metadata"] for row in stored_chunks(settings, pipeline_name, "same-text")] == [{"v": 2}]


def test_a_batch_waits_for_an_uncommitted_batch_of_the_same_document_and_replaces_what_it_wrote(
    run_with_store: StoreRunner[Any], settings: Settings, pipeline_name: str
) -> None:
    """Two writers on one document at once: the first has moved it to another tenant with a longer
    text and not committed yet. The second, newer write waits for it, then sees and
    removes its chunks, wherever they are: before 0010 it planned its removals on a snapshot taken
    before the first committed, and the first one's chunks stayed under their tenant."""
    first = plan_batch([upsert(pipeline_name, "doc-1", 2, ["b1 ", "b2 ", "b3"], tenant="tenant-b", seed=2)])

    async def body(store: VectorStore, pool: psycopg_pool.AsyncConnectionPool) -> Any:
        await store.ensure_tenant_partitions({"tenant-a", "tenant-b", "tenant-c"})
        await store.write_batch([upsert(pipeline_name, "doc-1", 1, ["a1"], tenant="tenant-a")])
        async with await psycopg.AsyncConnection.connect(settings.postgres.dsn()) as writing:
            await register_vector_async(writing)
            await writing.execute(WRITE_BATCH_SQL, first)
            second = asyncio.create_task(
                store.write_batch([upsert(pipeline_name, "doc-1", 3, ["c1"], tenant="tenant-c", seed=3)])
            )
            await _wait_until_blocked_on_a_lock(pool, "the second batch", lock="transactionid")
            assert not second.done()
            await writing.commit()
        return await second

    (newest,) = run_with_store(body)
    assert (newest.applied, newest.chunk_count, newest.tenant_id) == (True, 1, "tenant-c")
    rows = stored_chunks(settings, pipeline_name, "doc-1")
    assert [(row["chunk_index"], row["chunk_text"], row["tenant_id"]) for row in rows] == [
        (0, "c1", "tenant-c")
    ]

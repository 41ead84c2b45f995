"""The vector store: chunks, embeddings and per-document state in Postgres (pgvector).

The streams side hands :meth:`VectorStore.write_batch` a whole micro-batch of upserts and deletes;
it is applied in one transaction and one database round trip (a single call of the
``tidewire_write_batch`` function of migrations 0002, 0006, 0007, 0010 and 0012, in autocommit mode, with every vector
sent in binary). Ordering is latest-wins on the Debezium source LSN of each document: a write applies
only if its LSN is at least the stored one and not below its pipeline's last TRUNCATE, and a delete
leaves a tombstone behind so that an older, replayed upsert cannot bring the document back.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy
import psycopg
import psycopg_pool
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

from tidewire.errors import InvalidVectorWriteError, StorageError, VectorStoreUnavailableError, first_line

DEFAULT_DIMENSION = 384

# What a search orders by to walk the chunks' HNSW index, which is built on exactly this expression
# (migration 0009: half-precision copies of the vectors); ordered by anything else, a query cannot use
# the index. ``%(embedding)s`` is the query vector.
HNSW_ORDER_BY = f"embedding::halfvec({DEFAULT_DIMENSION}) <=> %(embedding)s::halfvec({DEFAULT_DIMENSION})"


@dataclass(frozen=True)
class SourcePosition:
    """Where a change sits in the source database's history.

    Latest-wins ordering is by ``lsn``: a write applies only if ``lsn >=`` the stored LSN of its
    document (``>=`` so that a replay of the very same event is an idempotent no-op that still applies).
    """

    lsn: int  # Debezium source.lsn of the change (snapshot reads: the snapshot's lsn)
    committed_at: datetime  # source.ts_ms of the commit, timezone-aware UTC


@dataclass(frozen=True)
class ChunkVector:
    """One chunk of a document's embedded text and its embedding."""

    chunk_index: int  # 0..n-1
    text: str  # exact chunk text (a slice of the embedded text)
    embedding: numpy.ndarray  # float32, shape (dim,), L2-normalized


@dataclass(frozen=True)
class DocumentUpsert:
    """A document's new version.

    ``chunks``: ``None`` = the embedded text is unchanged since the stored version (keep the stored
    chunks and vectors, update metadata and position only); ``[]`` = the text is empty (no chunks).
    """

    pipeline: str
    tenant_id: str
    document_id: str
    position: SourcePosition
    text_hash: str  # sha256 hex of the embedded text
    metadata: dict[str, Any]  # JSON object stored with every chunk
    chunks: list[ChunkVector] | None
    model: str


@dataclass(frozen=True)
class DocumentDelete:
    """A document deleted at the source; ``tenant_id`` may be unknown (Debezium sends only the key)."""

    pipeline: str
    tenant_id: str | None
    document_id: str
    position: SourcePosition


@dataclass(frozen=True)
class StoredVersion:
    """What the store holds for a document (a tombstone after a delete)."""

    text_hash: str
    lsn: int
    deleted: bool
    chunk_count: int


@dataclass(frozen=True)
class WriteOutcome:
    """What one write did; ``applied`` is False when latest-wins skipped it as older than the stored one."""

    pipeline: str
    tenant_id: str | None
    document_id: str
    applied: bool
    deleted: bool
    chunk_count: int  # chunks the document has after the write
    position: SourcePosition
    indexed_at: datetime  # database clock when the batch's write ran (it commits within the same call)
    # The tenant the applied write took the live document from (None: same tenant, new, or deleted).
    previous_tenant_id: str | None = None

    @property
    def left_tenant(self) -> str | None:
        """The tenant the document left with this write, if it changed tenant."""
        if self.previous_tenant_id is None or self.previous_tenant_id == self.tenant_id:
            return None
        return self.previous_tenant_id


Write = DocumentUpsert | DocumentDelete

_WRITE_BATCH_SQL = (
    "SELECT write_ordinal, write_applied, doc_deleted, doc_chunk_count, doc_tenant_id, doc_indexed_at, "
    "doc_previous_tenant_id "
    "FROM public.tidewire_write_batch("
    "%b::integer[], %b::text[], %b::text[], %b::text[], %b::boolean[], %b::bigint[], %b::timestamptz[], "
    "%b::text[], %b::jsonb[], %b::text[], %b::integer[], %b::integer[], %b::integer[], %b::text[], %b::vector[])"
)

_STORED_VERSIONS_SQL = (
    "SELECT s.pipeline, s.document_id, s.text_hash, s.source_lsn, s.deleted, s.chunk_count "
    "FROM public.tidewire_document_state AS s "
    "JOIN unnest(%b::text[], %b::text[]) AS k(pipeline, document_id) "
    "ON s.pipeline = k.pipeline AND s.document_id = k.document_id"
)

# Gives each tenant its own partition of the chunks table, so its own HNSW graph (migration 0007);
# rows of the tenants listed, returns those it made a partition for.
_ENSURE_TENANT_PARTITIONS_SQL = (
    "SELECT tenant_id FROM unnest(%b::text[]) AS t(tenant_id) "
    "WHERE public.tidewire_ensure_tenant_partition(tenant_id)"
)

# Records the pipeline's truncate position (write_batch then skips older writes), tombstones every
# live document of the pipeline last written before the TRUNCATE, and removes their chunks (migration 0006).
_TRUNCATE_SQL = "SELECT public.tidewire_truncate_pipeline(%(pipeline)s, %(lsn)s, %(committed_at)s)"


def plan_batch(writes: Sequence[Write], *, dimension: int = DEFAULT_DIMENSION) -> tuple[list[Any], ...]:
    """Validate ``writes`` and lay them out as the arguments of ``tidewire_write_batch``.

    1. Rounds: the k-th write (in LSN order, ties in input order) of each document goes to round k,
       so the database applies several writes of one document one after the other.
    2. Columns: one array per write field; chunks flattened, each pointing at its write (1-based).
    """
    # 1. Rounds
    by_document: dict[tuple[str, str], list[int]] = defaultdict(list)
    for position, write in enumerate(writes):
        by_document[(write.pipeline, write.document_id)].append(position)
    rounds = [0] * len(writes)
    for positions in by_document.values():
        positions.sort(key=lambda index: (writes[index].position.lsn, index))
        for round_number, index in enumerate(positions, start=1):
            rounds[index] = round_number
    # 2. Columns
    columns: tuple[list[Any], ...] = tuple([] for _ in range(15))
    (
        p_round, p_pipeline, p_document_id, p_tenant_id, p_is_delete, p_lsn, p_committed_at,
        p_text_hash, p_metadata, p_model, p_chunk_count, c_write, c_index, c_text, c_embedding,
    ) = columns  # fmt: skip
    for ordinal, write in enumerate(writes, start=1):
        _check_position(write)
        p_round.append(rounds[ordinal - 1])
        p_pipeline.append(write.pipeline)
        p_document_id.append(write.document_id)
        p_tenant_id.append(write.tenant_id)
        p_lsn.append(write.position.lsn)
        p_committed_at.append(write.position.committed_at)
        if isinstance(write, DocumentDelete):
            p_is_delete.append(True)
            p_text_hash.append(None)
            p_metadata.append(None)
            p_model.append(None)
            p_chunk_count.append(0)
            continue
        p_is_delete.append(False)
        p_text_hash.append(write.text_hash)
        p_metadata.append(Jsonb(write.metadata))
        p_model.append(write.model)
        if write.chunks is None:
            p_chunk_count.append(None)
            continue
        p_chunk_count.append(len(write.chunks))
        for expected_index, chunk in enumerate(write.chunks):
            if chunk.chunk_index != expected_index:
                raise InvalidVectorWriteError(
                    f"document {write.document_id!r} of pipeline {write.pipeline!r}: chunk indexes must be "
                    f"0..{len(write.chunks) - 1} in order, got {chunk.chunk_index} at position {expected_index}"
                )
            c_write.append(ordinal)
            c_index.append(chunk.chunk_index)
            c_text.append(chunk.text)
            c_embedding.append(_checked_embedding(write, chunk, dimension))
    return columns


def _check_position(write: Write) -> None:
    if write.position.lsn < 0:
        raise InvalidVectorWriteError(f"document {write.document_id!r}: lsn {write.position.lsn} is negative")
    if write.position.committed_at.tzinfo is None:
        raise InvalidVectorWriteError(
            f"document {write.document_id!r}: committed_at must be timezone-aware (UTC), got a naive datetime"
        )


def _checked_embedding(write: DocumentUpsert, chunk: ChunkVector, dimension: int) -> numpy.ndarray:
    embedding = numpy.asarray(chunk.embedding, dtype=numpy.float32)
    if embedding.shape != (dimension,):
        raise InvalidVectorWriteError(
            f"document {write.document_id!r} chunk {chunk.chunk_index}: embedding shape {embedding.shape}, "
            f"the vector table holds ({dimension},)"
        )
    if not numpy.isfinite(embedding).all():
        raise InvalidVectorWriteError(
            f"document {write.document_id!r} chunk {chunk.chunk_index}: embedding has NaN or infinite values"
        )
    return embedding


class VectorStore:
    """Reads and writes the vector tables over an async psycopg pool; never blocks the event loop."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool, *, dimension: int = DEFAULT_DIMENSION) -> None:
        self._pool = pool
        self.dimension = dimension
        self._vector_info: TypeInfo | None = None
        # Connections whose adapters already know the vector type (the pool may hand out others).
        self._prepared: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()
        # Tenants known to have their own partition of the chunks table.
        self._partitioned_tenants: set[str] = set()

    async def stored_versions(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        """(pipeline, document_id) -> stored version, one query; missing keys are absent."""
        if not keys:
            return {}
        pipelines = [pipeline for pipeline, _ in keys]
        document_ids = [document_id for _, document_id in keys]
        rows = await self._fetch(_STORED_VERSIONS_SQL, (pipelines, document_ids))
        return {
            (pipeline, document_id): StoredVersion(
                text_hash=text_hash, lsn=lsn, deleted=deleted, chunk_count=chunk_count
            )
            for pipeline, document_id, text_hash, lsn, deleted, chunk_count in rows
        }

    async def write_batch(self, writes: Sequence[Write]) -> list[WriteOutcome]:
        """Apply a batch in ONE transaction and ONE database round trip (one more the first time the
        store meets a tenant: :meth:`ensure_tenant_partitions`); outcomes in input order.

        Latest-wins per document; surplus chunks go when a text gets shorter; a delete removes the
        chunks and keeps a tombstone; several writes of one document are applied in LSN order; a
        write below its pipeline's last :meth:`truncate` is skipped (``applied`` False).
        Raises :class:`VectorStoreUnavailableError` (retry the batch) when Postgres cannot be reached.
        """
        if not writes:
            return []
        params = plan_batch(writes, dimension=self.dimension)
        await self.ensure_tenant_partitions(
            {write.tenant_id for write in writes if write.tenant_id is not None}
        )
        rows = await self._fetch(_WRITE_BATCH_SQL, params)
        results = {row[0]: row for row in rows}
        outcomes = []
        for ordinal, write in enumerate(writes, start=1):
            _, applied, deleted, chunk_count, tenant_id, indexed_at, previous_tenant_id = results[ordinal]
            outcomes.append(
                WriteOutcome(
                    pipeline=write.pipeline,
                    tenant_id=tenant_id,
                    document_id=write.document_id,
                    applied=applied,
                    deleted=deleted,
                    chunk_count=chunk_count,
                    position=write.position,
                    indexed_at=indexed_at,
                    previous_tenant_id=previous_tenant_id,
                )
            )
        return outcomes

    async def ensure_tenant_partitions(self, tenant_ids: set[str]) -> list[str]:
        """Give each tenant its own partition of the chunks table (and so its own HNSW graph) unless it
        has one; returns the tenants it made one for. Asks the database once per tenant and store: a
        search then walks only its tenant's vectors, whatever other tenants hold."""
        missing = sorted(tenant_ids - self._partitioned_tenants)
        if not missing:
            return []
        rows = await self._fetch(_ENSURE_TENANT_PARTITIONS_SQL, (missing,))
        self._partitioned_tenants.update(missing)
        return [tenant_id for (tenant_id,) in rows]

    async def truncate(self, pipeline: str, position: SourcePosition) -> int:
        """A TRUNCATE of the source table: tombstone every document of ``pipeline`` older than ``position``.

        The position is also recorded for the pipeline (the highest one is kept), and from then on
        :meth:`write_batch` skips every write of the pipeline below it: an insert committed before the
        TRUNCATE but consumed after it (it sat on another partition) cannot index a row that is gone,
        even when the document had no state to tombstone. Returns how many documents were removed.
        """
        params = {"pipeline": pipeline, "lsn": position.lsn, "committed_at": position.committed_at}
        rows = await self._fetch(_TRUNCATE_SQL, params)
        return int(rows[0][0])

    async def _fetch(self, query: str, params: Any) -> list[tuple[Any, ...]]:
        async with self._connection() as connection, connection.cursor() as cursor:
            await cursor.execute(query, params)
            return await cursor.fetchall()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with autocommit_connection(self._pool) as connection:
                await self._prepare(connection)
                yield connection
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as error:
            raise VectorStoreUnavailableError(
                f"the vector store (Postgres) is unreachable: {first_line(error)}; "
                "retry the batch, and check the database with `tidewire status`"
            ) from error
        except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as error:
            raise VectorStoreUnavailableError(
                f"the vector store write lost a race with a concurrent writer: {first_line(error)}; retry the batch",
                retry_after_s=0.1,
            ) from error
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as error:
            raise StorageError(
                f"the vector tables are missing ({first_line(error)}); run `tidewire db upgrade`"
            ) from error
        except psycopg.Error as error:
            raise StorageError(f"the vector store refused the operation: {first_line(error)}") from error

    async def _prepare(self, connection: psycopg.AsyncConnection[Any]) -> None:
        if connection in self._prepared:
            return
        if self._vector_info is None:
            # One extra round trip for the life of the store, on its first connection.
            self._vector_info = await TypeInfo.fetch(connection, "vector")
            if self._vector_info is None:
                raise StorageError("the pgvector extension is not installed; run `tidewire db upgrade`")
        register_vector_info(connection, self._vector_info)
        self._prepared.add(connection)


@asynccontextmanager
async def autocommit_connection(
    pool: psycopg_pool.AsyncConnectionPool,
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled connection in autocommit mode, given back as it was: one statement = one round trip.

    In a transaction block psycopg would send BEGIN and COMMIT as round trips of their own; a
    single statement in autocommit mode is still one atomic transaction.
    """
    async with pool.connection() as connection:
        was_autocommit = connection.autocommit
        if not was_autocommit:
            await connection.set_autocommit(True)  # client-side only: no round trip
        try:
            yield connection
        finally:
            if not was_autocommit and not connection.closed:
                await connection.set_autocommit(False)

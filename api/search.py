"""Tenant-scoped retrieval over ``tidewire_chunks``: vector (HNSW cosine) and hybrid search, and
read-your-writes waits.

Vector mode orders by pgvector's cosine distance ``<=>`` with the HNSW index of the tenant's own
partition of the table (migration 0007), with iterative index scans on, so a metadata filter that
rejects most candidates still yields ``k`` rows. It is one statement, a call of
``tidewire_vector_search`` (migration 0015), which sets the tenant for its own transaction; when the
scan stops short (``hnsw.max_scan_tuples``, or fewer than ``k`` rows in all) an exact scan of the
tenant's matching rows takes over, in a tenant transaction. Hybrid mode
adds Postgres full-text ranking (through the GIN index, see ``TEXT_SQL``) and fuses the two rankings
by reciprocal rank (RRF, k = 60).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from psycopg.types.json import Jsonb

from api.db import TenantConnection, TenantDatabase
from api.errors import ValidationFailedError
from api.schemas import SearchHitPublic
from tidewire.settings import ApiSettings
from tidewire.vector_store import HNSW_ORDER_BY

SearchMode = Literal["vector", "hybrid"]
RRF_K = 60

# A vector search in one statement (migration 0015): the function sets the tenant and the index settings
# for the statement's own transaction and runs _VECTOR_SQL's query, to the letter.
_VECTOR_SEARCH_CALL = """
SELECT document_id, chunk_index, chunk_text, metadata, source_lsn, score
FROM tidewire_vector_search(
    %(tenant)s, %(embedding)s, %(filter)s::jsonb, %(limit)s, %(ef_search)s, %(iterative_scan)s, %(max_scan_tuples)s
)
"""

# The walk through the index is in half precision (HNSW_ORDER_BY), the scores in full precision.
# Hybrid searches run it in their tenant transaction, next to the full-text query.
_VECTOR_SQL = f"""
SELECT document_id, chunk_index, chunk_text, metadata, source_lsn, 1 - (embedding <=> %(embedding)s) AS score
FROM tidewire_chunks
WHERE tenant_id = %(tenant)s AND (%(filter)s::jsonb IS NULL OR metadata @> %(filter)s::jsonb)
ORDER BY {HNSW_ORDER_BY}
LIMIT %(limit)s
"""

# The same ranking without the HNSW index: `+ 0` makes the ORDER BY expression one the index cannot
# serve, so the planner reads the tenant's rows through its btree index and sorts them exactly.
_EXACT_SQL = """
SELECT document_id, chunk_index, chunk_text, metadata, source_lsn, 1 - (embedding <=> %(embedding)s) AS score
FROM tidewire_chunks
WHERE tenant_id = %(tenant)s AND (%(filter)s::jsonb IS NULL OR metadata @> %(filter)s::jsonb)
ORDER BY (embedding <=> %(embedding)s) + 0
LIMIT %(limit)s
"""

# The full-text ranking runs in `tidewire_text_search` (migration 0005), where the GIN index of
# migration 0004 can serve it: under the API role's row-level security the planner may not use it,
# because `@@` is not LEAKPROOF. The function keeps to the transaction's tenant; the join back to
# `tidewire_chunks` passes every row through the API role's policy once more.
TEXT_SQL = """
SELECT c.document_id, c.chunk_index, c.chunk_text, c.metadata, c.source_lsn, m.score
FROM tidewire_text_search(%(text)s, %(filter)s::jsonb, %(limit)s) AS m
JOIN tidewire_chunks AS c USING (pipeline, document_id, chunk_index)
WHERE c.tenant_id = %(tenant)s
ORDER BY m.score DESC, c.document_id, c.chunk_index
"""


LSN_PREFIX = "lsn:"
_PG_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_TOKEN_FORMS = "<document_id>@<ISO-8601 timestamp> or <document_id>@lsn:<pg_lsn, e.g. 0/16B3748>"


def parse_pg_lsn(text: str) -> int:
    """A ``pg_lsn`` in its text form ``X/Y`` (two hex numbers of up to 32 bits) as the 64-bit integer
    ``(X << 32) + Y`` — the form Debezium reports as ``source.lsn`` and the index stores as
    ``source_lsn``. Raises ``ValueError`` for anything else."""
    match = _PG_LSN.fullmatch(text)
    if match is None:
        raise ValueError(f"not a pg_lsn: {text!r}")
    return (int(match[1], 16) << 32) + int(match[2], 16)


@dataclass(frozen=True)
class IndexedPosition:
    """How far the index has followed one document: its latest indexed change (deletes included),
    as a source commit time and a WAL position; None when it was never indexed."""

    committed_at: datetime | None
    lsn: int | None


@dataclass(frozen=True)
class ReadAfter:
    """A read-your-writes token (docs/api.md), in one of two forms:

    - ``<document_id>@<timestamp>``: the row's ``updated_at`` after the write; satisfied once the
      document was indexed from a source commit at or after it (millisecond precision);
    - ``<document_id>@lsn:<pg_lsn>``: ``pg_current_wal_insert_lsn()`` taken by the writer in its
      transaction before its write; satisfied once the document was indexed from a change at or
      after that WAL position. Any change of the row at or past it is the writer's or a newer one.

    Exactly one of ``committed_at`` and ``lsn`` is set.
    """

    document_id: str
    committed_at: datetime | None = None
    lsn: int | None = None

    @classmethod
    def parse(cls, token: str) -> ReadAfter:
        """Parse either form; :class:`ValidationFailedError` (422) for anything else."""
        document_id, separator, position = token.rpartition("@")
        if not separator or not document_id or "\x00" in token:
            raise ValidationFailedError(f"query.after: expected {_TOKEN_FORMS}")
        if position.startswith(LSN_PREFIX):
            try:
                return cls(document_id=document_id, lsn=parse_pg_lsn(position.removeprefix(LSN_PREFIX)))
            except ValueError:
                raise ValidationFailedError(
                    "query.after: the position after '@lsn:' is not a pg_lsn (X/Y, hexadecimal), "
                    "e.g. doc-1@lsn:0/16B3748"
                ) from None
        try:
            committed_at = datetime.fromisoformat(position.strip().replace(" ", "+"))
        except ValueError:
            raise ValidationFailedError(
                f"query.after: the position after '@' is neither an ISO-8601 timestamp nor lsn:X/Y; "
                f"expected {_TOKEN_FORMS}"
            ) from None
        if committed_at.tzinfo is None:
            committed_at = committed_at.replace(tzinfo=UTC)
        # Debezium reports commit times in whole milliseconds.
        committed_at = committed_at.replace(microsecond=committed_at.microsecond // 1000 * 1000)
        return cls(document_id=document_id, committed_at=committed_at)

    def is_satisfied_by(self, indexed: IndexedPosition) -> bool:
        """Whether the index has caught up with this token's write."""
        if self.lsn is not None:
            return indexed.lsn is not None and indexed.lsn >= self.lsn
        return (
            indexed.committed_at is not None
            and self.committed_at is not None
            and indexed.committed_at >= self.committed_at
        )


@dataclass(frozen=True)
class Retrieval:
    """Hits, and for each document among them the ``source_lsn`` of its chunks as this read saw them:
    the version the hits were built from (the least, should two pipelines index one document)."""

    hits: list[SearchHitPublic]
    source_lsns: dict[str, int]

    @classmethod
    def of(cls, hits: list[SearchHitPublic], rows: list[dict[str, Any]]) -> Retrieval:
        documents = {hit.document_id for hit in hits}
        source_lsns: dict[str, int] = {}
        for row in rows:
            document_id = row["document_id"]
            if document_id in documents:
                lsn = int(row["source_lsn"])
                source_lsns[document_id] = min(lsn, source_lsns.get(document_id, lsn))
        return cls(hits=hits, source_lsns=source_lsns)


class SearchService:
    """Runs searches for one tenant at a time: a vector search as one statement that sets its own
    tenant, everything else in a tenant transaction."""

    def __init__(self, database: TenantDatabase, settings: ApiSettings) -> None:
        self._database = database
        self._settings = settings
        # The index settings are fixed for the process: built once, not per search.
        self._index_settings = {"hnsw.ef_search": str(settings.hnsw_ef_search)}
        if settings.iterative_scan != "off":
            self._index_settings["hnsw.iterative_scan"] = settings.iterative_scan
            self._index_settings["hnsw.max_scan_tuples"] = str(settings.hnsw_max_scan_tuples)
        self._search_call_settings = {
            "ef_search": settings.hnsw_ef_search,
            "iterative_scan": settings.iterative_scan,
            "max_scan_tuples": settings.hnsw_max_scan_tuples,
        }

    async def retrieve(
        self,
        tenant_id: str,
        *,
        text: str,
        embedding: np.ndarray,
        k: int,
        mode: SearchMode = "vector",
        metadata_filter: dict[str, Any] | None = None,
    ) -> Retrieval:
        """The tenant's ``k`` best chunks, best first, with the WAL position of each hit document's
        chunks as this read saw them."""
        limit = k if mode == "vector" else max(k * 4, 40)
        parameters = {
            "tenant": tenant_id,
            "embedding": embedding,
            "filter": Jsonb(metadata_filter) if metadata_filter is not None else None,
            "limit": limit,
            "text": text,
        }
        if mode == "vector":
            rows = await self._database.statement(
                _VECTOR_SEARCH_CALL, parameters | self._search_call_settings
            )
            if len(rows) < limit:
                async with self._database.transaction(tenant_id) as connection:
                    rows = await _exact_when_short(connection, rows, parameters)
            return Retrieval.of(best_hits(rows, k), rows)
        async with self._database.transaction(tenant_id, self._index_settings) as connection:
            vector_rows = await (await connection.execute(_VECTOR_SQL, parameters)).fetchall()
            vector_rows = await _exact_when_short(connection, vector_rows, parameters)
            text_rows = await (await connection.execute(TEXT_SQL, parameters)).fetchall()
        return Retrieval.of(reciprocal_rank_fusion([vector_rows, text_rows], k), [*vector_rows, *text_rows])

    async def wait_until_indexed(self, tenant_id: str, after: ReadAfter, *, max_wait_s: float) -> bool:
        """Wait (bounded) until ``after`` is reflected in the index; True when it is."""
        deadline = time.monotonic() + max_wait_s
        interval_s = 0.02
        while True:
            async with self._database.transaction(tenant_id) as connection:
                # Deleted documents keep their state row (a tombstone), so a delete satisfies too.
                row = await (
                    await connection.execute(
                        "SELECT max(source_committed_at) AS committed_at, max(source_lsn) AS lsn "
                        "FROM tidewire_document_state WHERE tenant_id = %s AND document_id = %s",
                        (tenant_id, after.document_id),
                    )
                ).fetchone()
            indexed = IndexedPosition(
                committed_at=row["committed_at"] if row else None, lsn=row["lsn"] if row else None
            )
            if after.is_satisfied_by(indexed):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(interval_s, remaining))
            interval_s = min(interval_s * 1.5, 0.2)


async def _exact_when_short(
    connection: TenantConnection, rows: list[dict[str, Any]], parameters: dict[str, Any]
) -> list[dict[str, Any]]:
    """``rows`` of the index scan, or, when it returned fewer than the limit, the exact scan's.

    The index scan gives up before finding enough matching rows past hnsw.max_scan_tuples (a selective
    filter), or the tenant has fewer. Such a result set is small, so an exact scan of it is cheap, and it
    returns every row there is."""
    if len(rows) >= parameters["limit"]:
        return rows
    return await (await connection.execute(_EXACT_SQL, parameters)).fetchall()


def _hit(row: dict[str, Any], score: float) -> SearchHitPublic:
    return SearchHitPublic(
        document_id=row["document_id"],
        chunk_index=row["chunk_index"],
        score=score,
        text=row["chunk_text"],
        metadata=row["metadata"] or {},
    )


def best_hits(rows: list[dict[str, Any]], k: int) -> list[SearchHitPublic]:
    """Hits by descending score (iterative scans may return rows slightly out of order); a chunk
    indexed by two pipelines appears once."""
    seen: set[tuple[str, int]] = set()
    hits = []
    for row in sorted(rows, key=lambda row: -float(row["score"])):
        key = (row["document_id"], row["chunk_index"])
        if key not in seen:
            seen.add(key)
            hits.append(_hit(row, float(row["score"])))
    return hits[:k]


def reciprocal_rank_fusion(rankings: list[list[dict[str, Any]]], k: int) -> list[SearchHitPublic]:
    """Fuse rankings of chunk rows: score = Σ 1 / (60 + rank); best first, ``k`` of them."""
    scores: dict[tuple[str, int], float] = {}
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, start=1):
            key = (row["document_id"], row["chunk_index"])
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
            rows.setdefault(key, row)
    best = sorted(scores, key=lambda key: (-scores[key], key))[:k]
    return [_hit(rows[key], scores[key]) for key in best]

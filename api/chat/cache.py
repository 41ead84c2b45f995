"""The semantic answer cache, kept in ``tidewire_answers``.

A stored answer is reused for a question of the same tenant whose embedding lies within
``api.semantic_cache_distance`` (cosine distance) of the cached question's, as long as

- no notification has invalidated it (``invalidated_at`` is NULL: a ``document.indexed`` or
  ``document.deleted`` notification for one of its source documents sets it), and
- every one of its source documents is still, for this tenant, at the version its sources were
  retrieved from: no change past the WAL position retrieval read (``source_lsns``, migration 0013) has
  been indexed, and the document has not left the tenant. Checked in the same query, so an answer stays
  correct even if the API missed a notification while down, or a change was indexed while the answer
  was being built, whatever the timing;
- it is younger than ``api.semantic_cache_max_age_s``: a model, a prompt or a provider may have
  changed since, and an answer nobody re-checks should not live for ever. ``tidewire answers prune``
  deletes old answers for good.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from api.db import TenantConnection, TenantDatabase

# The database's clock comes back on a miss too: an answer is stored as of this moment, before its
# sources are retrieved (the age limit and the notifications' invalidation go by it). Whether a source
# changed since is decided by WAL positions, not clocks: a document counts as changed once any of its
# state rows visible to the tenant is past the position retrieval read, or none is left (deleted for
# good, or moved to another tenant). Answers stored before positions were kept (NULL) are not reused.
_LOOKUP_SQL = """
SELECT now() AS looked_at, hit.*
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
  SELECT answer_id, answer, sources, provider, model, question_embedding <=> %(embedding)s AS distance
  FROM tidewire_answers AS a
  WHERE tenant_id = %(tenant)s AND invalidated_at IS NULL AND created_at > now() - %(max_age)s::interval
    AND a.source_lsns IS NOT NULL
    AND NOT EXISTS (
      SELECT 1 FROM unnest(a.source_documents, a.source_lsns) AS seen(document_id, source_lsn)
      WHERE coalesce(
        (SELECT max(s.source_lsn) FROM tidewire_document_state AS s
         WHERE s.tenant_id = a.tenant_id AND s.document_id = seen.document_id),
        9223372036854775807) > seen.source_lsn)
  ORDER BY question_embedding <=> %(embedding)s
  LIMIT 1
) AS hit ON true
"""

_INSERT_SQL = """
INSERT INTO tidewire_answers
  (answer_id, tenant_id, question, question_embedding, answer, sources, source_documents, source_lsns, provider,
   model, usage, created_at)
VALUES (%(answer_id)s, %(tenant)s, %(question)s, %(embedding)s, %(answer)s, %(sources)s, %(documents)s,
        %(source_lsns)s, %(provider)s, %(model)s, %(usage)s, coalesce(%(created_at)s::timestamptz, now()))
"""

# Only answers written before the change was indexed: a notification that arrives late (the hub
# lags the index a little) must not invalidate an answer already built on the new version. The
# function (migration 0008) finds the candidate answers through the GIN index on their sources, which
# row-level security keeps from a query of the API role; it keeps to the transaction's tenant.
_INVALIDATE_SQL = "SELECT public.tidewire_invalidate_answers(%(documents)s::text[], %(indexed_at)s::timestamptz[]) AS invalidated"


@dataclass(frozen=True)
class CacheLookup:
    """A lookup's answer (None: a miss) and the database's clock when it looked (None: cache off)."""

    answer: CachedAnswer | None
    looked_at: datetime | None


@dataclass(frozen=True)
class CachedAnswer:
    answer_id: str
    answer: str
    sources: list[dict[str, Any]]
    provider: str
    model: str | None
    distance: float


class SemanticCache:
    def __init__(
        self, database: TenantDatabase, *, max_distance: float, max_age: timedelta, enabled: bool = True
    ) -> None:
        self._database = database
        self.max_distance = max_distance
        self.max_age = max_age
        self.enabled = enabled

    async def lookup(self, tenant_id: str, embedding: np.ndarray) -> CacheLookup:
        """The closest live cached answer within the distance, if any, and when the lookup ran (the
        time to :meth:`store` an answer generated after the miss with)."""
        if not self.enabled:
            return CacheLookup(answer=None, looked_at=None)
        async with self._database.transaction(
            tenant_id, {"hnsw.iterative_scan": "relaxed_order"}
        ) as connection:
            row = await (
                await connection.execute(
                    _LOOKUP_SQL,
                    {"tenant": tenant_id, "embedding": embedding, "max_age": self.max_age},
                )
            ).fetchone()
        assert row is not None  # the LEFT JOIN always gives one row
        if row["answer_id"] is None or float(row["distance"]) > self.max_distance:
            return CacheLookup(answer=None, looked_at=row["looked_at"])
        answer = CachedAnswer(
            answer_id=str(row["answer_id"]),
            answer=row["answer"],
            sources=row["sources"],
            provider=row["provider"],
            model=row["model"],
            distance=float(row["distance"]),
        )
        return CacheLookup(answer=answer, looked_at=row["looked_at"])

    async def store(
        self,
        tenant_id: str,
        *,
        question: str,
        embedding: np.ndarray,
        answer: str,
        sources: list[dict[str, Any]],
        provider: str,
        model: str | None,
        usage: dict[str, Any],
        answer_id: uuid.UUID,
        source_lsns: dict[str, int],
        built_as_of: datetime | None = None,
    ) -> None:
        """Keep a completed answer with its sources (also when the cache is off: answers are stored).

        ``source_lsns``: for each source document, the WAL position of the chunks retrieval read
        (:class:`api.search.Retrieval`); a change past it makes the answer stale. ``built_as_of``: a
        database time before its sources were retrieved (:meth:`lookup`'s), for the age limit and the
        notifications' invalidation. None: now."""
        documents = sorted({source["document_id"] for source in sources})
        async with self._database.transaction(tenant_id) as connection:
            await self._insert(
                connection,
                {
                    "answer_id": answer_id,
                    "tenant": tenant_id,
                    "question": question,
                    "embedding": embedding,
                    "answer": answer,
                    "sources": Jsonb(sources),
                    "documents": documents,
                    "source_lsns": [source_lsns[document_id] for document_id in documents],
                    "provider": provider,
                    "model": model,
                    "usage": Jsonb(usage),
                    "created_at": built_as_of,
                },
            )

    @staticmethod
    async def _insert(connection: TenantConnection, parameters: dict[str, Any]) -> None:
        await connection.execute(_INSERT_SQL, parameters)

    async def invalidate(self, tenant_id: str, changes: dict[str, datetime]) -> int:
        """Invalidate the tenant's cached answers built on a document before it changed
        (``changes``: document id → when the change was indexed); returns how many."""
        if not changes:
            return 0
        parameters = {"documents": list(changes), "indexed_at": list(changes.values())}
        async with self._database.transaction(tenant_id) as connection:
            row = await (await connection.execute(_INVALIDATE_SQL, parameters)).fetchone()
        return int(row["invalidated"]) if row else 0

"""The semantic answer cache, kept in ``tidewire_answers``.

A stored answer is reused for a question of the same tenant whose embedding lies within
``api.semantic_cache_distance`` (cosine distance) of the cached question's, as long as

- no notification has invalidated it (``invalidated_at`` is NULL: a ``document.indexed`` or
  ``document.deleted`` notification for one of its source documents sets it), and
- none of its source documents has been indexed again since just before its sources were
  retrieved (checked in the same query, so an answer stays correct even if the API missed a
  notification while down), and
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
# sources are retrieved, not as of the end of its generation seconds later (a document re-indexed
# while the answer was generated would not have invalidated it). What is left: a write stamped
# (indexed_at, when it starts) before this moment but committed after the retrieval read, a window of
# one write's duration (milliseconds to about a second).
_LOOKUP_SQL = """
SELECT now() AS looked_at, hit.*
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
  SELECT answer_id, answer, sources, provider, model, question_embedding <=> %(embedding)s AS distance
  FROM tidewire_answers AS a
  WHERE tenant_id = %(tenant)s AND invalidated_at IS NULL AND created_at > now() - %(max_age)s::interval
    AND NOT EXISTS (
      SELECT 1 FROM tidewire_document_state AS s
      WHERE s.tenant_id = a.tenant_id AND s.document_id = ANY (a.source_documents)
        AND s.indexed_at > a.created_at)
  ORDER BY question_embedding <=> %(embedding)s
  LIMIT 1
) AS hit ON true
"""

_INSERT_SQL = """
INSERT INTO tidewire_answers
  (answer_id, tenant_id, question, question_embedding, answer, sources, source_documents, provider, model, usage,
   created_at)
VALUES (%(answer_id)s, %(tenant)s, %(question)s, %(embedding)s, %(answer)s, %(sources)s, %(documents)s,
        %(provider)s, %(model)s, %(usage)s, coalesce(%(created_at)s::timestamptz, now()))
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
        built_as_of: datetime | None = None,
    ) -> None:
        """Keep a completed answer with its sources (also when the cache is off: answers are stored).

        ``built_as_of``: a database time before its sources were retrieved (:meth:`lookup`'s); a
        change indexed after it invalidates the answer. None: now."""
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
                    "documents": sorted({source["document_id"] for source in sources}),
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

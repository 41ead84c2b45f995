"""Removing from the index the documents whose source rows are gone without a delete ever arriving.

A delete reaches the index through its change event. When that event is lost — the connector's
replication slot was invalidated (``wal_status = lost``) and re-created, or a connector was deleted
and applied again from a new slot — the document keeps its vectors, and a re-snapshot cannot help:
it reads the rows that exist. :func:`prune_orphans` finds such documents (indexed and live, with no
row of that id in the pipeline's source table) and deletes them through the same latest-wins write
as the stream workers, then notifies their tenants with ``document.deleted``.

Each delete is placed one byte past the document's last indexed change (``source_lsn + 1``). No WAL
record starts there (the record at ``source_lsn`` is longer than one byte), so the delete sorts after
everything the index has seen of the document and before any later change of its row: a replay of
the old change cannot bring the document back, and a row inserted again with that id is indexed as
usual, even if it was written while the prune ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
import psycopg_pool
from psycopg import sql

from streams.notifications import notifications_for
from tidewire.errors import (
    ConfigurationError,
    ServiceError,
    StorageError,
    VectorStoreUnavailableError,
    first_line,
)
from tidewire.events import make_event_codec
from tidewire.kafka_clients import produce_and_wait
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import Settings
from tidewire.vector_store import (
    DocumentDelete,
    SourcePosition,
    VectorStore,
    WriteOutcome,
    autocommit_connection,
)

# Key types whose text form (``key::text``) is the document id the decoder builds from Debezium's
# JSON rendering of the key (``str(value)``). Others (numeric as bytes, timestamps as epoch numbers,
# char(n) padded) would not compare equal, and every document would look orphaned.
PRUNABLE_KEY_TYPES = frozenset({"text", "character varying", "smallint", "integer", "bigint", "uuid"})

WRITE_BATCH_DOCUMENTS = 500

_KEY_TYPE_SQL = """
SELECT format_type(a.atttypid, NULL)
FROM pg_attribute AS a
WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = %(key)s AND NOT a.attisdropped
"""

# One statement, so one snapshot: a document is an orphan if no row of its id is visible in it.
_ORPHANS_SQL = """
SELECT s.document_id, s.tenant_id, s.source_lsn, now() AS seen_at
FROM public.tidewire_document_state AS s
WHERE s.pipeline = %(pipeline)s AND NOT s.deleted
  AND (%(document_ids)s::text[] IS NULL OR s.document_id = ANY(%(document_ids)s::text[]))
  AND NOT EXISTS (SELECT FROM {table} AS t WHERE t.{key}::text = s.document_id)
ORDER BY s.document_id
"""


@dataclass(frozen=True)
class OrphanDocument:
    """A live indexed document with no row in its pipeline's source table."""

    document_id: str
    tenant_id: str | None
    source_lsn: int  # the position of its last indexed change
    seen_at: datetime  # when the prune saw its row missing (database clock)

    def delete(self, pipeline: str) -> DocumentDelete:
        """The delete that removes it: one byte past its last indexed change (module docstring)."""
        return DocumentDelete(
            pipeline=pipeline,
            tenant_id=self.tenant_id,
            document_id=self.document_id,
            position=SourcePosition(lsn=self.source_lsn + 1, committed_at=self.seen_at),
        )


@dataclass(frozen=True)
class PruneResult:
    """What a prune of one pipeline found and did."""

    pipeline: str
    table: str
    orphans: list[str]  # document ids with no source row, when looked
    removed: list[str]  # those deleted from the index (empty on a dry run)
    kept: list[str]  # orphans a newer change reached first (indexed again meanwhile): left alone
    notified: int  # document.deleted notifications published


def check_prunable_key_type(spec: PipelineSpec, key_type: str | None) -> None:
    """Raise :class:`ConfigurationError` unless the pipeline's key type compares as text with ids."""
    if key_type is None:
        raise ConfigurationError(
            f"{spec.source_table} does not exist or has no column {spec.primary_key!r} "
            f"(pipeline {spec.name}); check the pipeline spec"
        )
    if key_type not in PRUNABLE_KEY_TYPES:
        supported = ", ".join(sorted(PRUNABLE_KEY_TYPES))
        raise ConfigurationError(
            f"cannot look for orphans of pipeline {spec.name}: its key {spec.primary_key!r} is {key_type}, "
            f"whose text form may differ from the document ids; supported key types: {supported}"
        )


def prune_orphans(
    settings: Settings, spec: PipelineSpec, *, document_ids: Sequence[str] = (), dry_run: bool = False
) -> PruneResult:
    """Find the pipeline's orphaned documents (only among ``document_ids`` when given) and, unless
    ``dry_run``, delete them from the index and publish a ``document.deleted`` for each one removed."""
    found, outcomes = asyncio.run(_find_and_delete(settings, spec, list(document_ids), dry_run=dry_run))
    notifications = notifications_for(outcomes, {spec.name: spec}, spec.model)
    if notifications:
        codec = make_event_codec(settings.kafka)
        topic = settings.topics.notifications
        produce_and_wait(
            settings.kafka.bootstrap,
            [(topic, n.message_key(), codec.encode(n, topic=topic)) for n in notifications],
            what="publishing document.deleted",
            then=f"the {len(notifications)} document(s) are out of the index, but SSE clients and webhooks "
            "were not told (the API's search cache forgets them within api.search_cache_ttl_s)",
        )
    return PruneResult(
        pipeline=spec.name,
        table=spec.source_table,
        orphans=[orphan.document_id for orphan in found],
        removed=[outcome.document_id for outcome in outcomes if outcome.applied],
        kept=[outcome.document_id for outcome in outcomes if not outcome.applied],
        notified=len(notifications),
    )


async def _find_and_delete(
    settings: Settings, spec: PipelineSpec, document_ids: list[str], *, dry_run: bool
) -> tuple[list[OrphanDocument], list[WriteOutcome]]:
    try:
        # One connection first, so that a Postgres that does not answer is one line at once, not a
        # pool retrying in the background for its whole timeout.
        probe = await psycopg.AsyncConnection.connect(settings.postgres.dsn(), connect_timeout=10)
    except psycopg.OperationalError as error:
        raise ServiceError.postgres_unreachable(settings.postgres, error, "to look for orphans") from None
    await probe.close()
    pool = psycopg_pool.AsyncConnectionPool(
        settings.postgres.dsn(), min_size=1, max_size=1, open=False, name="tidewire-prune"
    )
    await pool.open(wait=True, timeout=10)
    async with pool:
        orphans = await _find_orphans(pool, spec, document_ids)
        if dry_run or not orphans:
            return orphans, []
        store = VectorStore(pool)
        outcomes: list[WriteOutcome] = []
        for start in range(0, len(orphans), WRITE_BATCH_DOCUMENTS):
            batch = orphans[start : start + WRITE_BATCH_DOCUMENTS]
            outcomes.extend(await store.write_batch([orphan.delete(spec.name) for orphan in batch]))
        return orphans, outcomes


async def _find_orphans(
    pool: psycopg_pool.AsyncConnectionPool, spec: PipelineSpec, document_ids: list[str]
) -> list[OrphanDocument]:
    query = sql.SQL(_ORPHANS_SQL).format(
        table=sql.Identifier(spec.schema_name, spec.table_name), key=sql.Identifier(spec.primary_key)
    )
    try:
        async with autocommit_connection(pool) as connection, connection.cursor() as cursor:
            await cursor.execute(_KEY_TYPE_SQL, {"table": spec.source_table, "key": spec.primary_key})
            row = await cursor.fetchone()
            check_prunable_key_type(spec, row[0] if row else None)
            await cursor.execute(query, {"pipeline": spec.name, "document_ids": document_ids or None})
            rows = await cursor.fetchall()
    except psycopg.OperationalError as error:
        raise VectorStoreUnavailableError(
            f"cannot read {spec.source_table} (pipeline {spec.name}): Postgres is unreachable; retry"
        ) from error
    except psycopg.Error as error:
        raise StorageError(f"cannot look for orphans of pipeline {spec.name}: {first_line(error)}") from error
    return [
        OrphanDocument(document_id=document_id, tenant_id=tenant_id, source_lsn=lsn, seen_at=seen_at)
        for document_id, tenant_id, lsn, seen_at in rows
    ]

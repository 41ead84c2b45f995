"""The vector store: chunks with embeddings, per-document state, and the batch write function.

- `tidewire_chunks`: one row per chunk of a document (pgvector `vector(384)`), searched by tenant
  with cosine distance through an HNSW index. The index is built CONCURRENTLY so that a migration
  of a live database does not block the writers that stream vectors in.
- `tidewire_document_state`: one row per document, deleted or not: its source position (latest-wins),
  the hash of its embedded text (skip re-embedding) and, after a delete, a tombstone that keeps an
  older replayed upsert from resurrecting the document.
- `tidewire_write_batch(...)`: applies a whole batch of upserts and deletes in one call, so a batch
  costs one database round trip (see tidewire/vector_store.py for the argument layout).

Both tables are owned by the application role (migrations run as it). The function is SECURITY
INVOKER, so row-level security that the read side enables on `tidewire_chunks` later applies to
whoever calls it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DIMENSION = 384

# Built without a lock on writes; a failed concurrent build leaves an INVALID index behind, which
# `IF NOT EXISTS` would then keep forever: _create_index_concurrently drops such a leftover first.
_CONCURRENT_INDEXES = {
    "tidewire_chunks_embedding_hnsw_idx": (
        "ON public.tidewire_chunks USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)"
    ),
    "tidewire_chunks_tenant_idx": "ON public.tidewire_chunks (tenant_id, pipeline)",
}

_WRITE_BATCH_FUNCTION = """
CREATE FUNCTION public.tidewire_write_batch(
  p_round        integer[],
  p_pipeline     text[],
  p_document_id  text[],
  p_tenant_id    text[],
  p_is_delete    boolean[],
  p_lsn          bigint[],
  p_committed_at timestamptz[],
  p_text_hash    text[],
  p_metadata     jsonb[],
  p_model        text[],
  p_chunk_count  integer[],
  c_write        integer[],
  c_index        integer[],
  c_text         text[],
  c_embedding    vector[]
) RETURNS TABLE (
  write_ordinal   integer,
  write_applied   boolean,
  doc_deleted     boolean,
  doc_chunk_count integer,
  doc_tenant_id   text,
  doc_indexed_at  timestamptz
)
LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
  v_round   integer;
  v_rounds  integer := coalesce((SELECT max(r) FROM unnest(p_round) AS r), 0);
  v_started timestamptz := clock_timestamp();
BEGIN
  -- Round k holds the k-th write (in lsn order) of each document, so within a round every
  -- document appears once and each round is applied as a set, after the previous one.
  FOR v_round IN 1 .. v_rounds LOOP
    RETURN QUERY
    WITH w AS (
      SELECT t.ordinal::integer AS ordinal, t.pipeline, t.document_id, t.tenant_id, t.is_delete,
             t.lsn, t.committed_at, t.text_hash, t.metadata, t.model, t.chunk_count
      FROM unnest(p_round, p_pipeline, p_document_id, p_tenant_id, p_is_delete, p_lsn,
                  p_committed_at, p_text_hash, p_metadata, p_model, p_chunk_count)
           WITH ORDINALITY AS t(round, pipeline, document_id, tenant_id, is_delete, lsn,
                                committed_at, text_hash, metadata, model, chunk_count, ordinal)
      WHERE t.round = v_round
    ),
    prev AS (
      SELECT s.pipeline, s.document_id, s.tenant_id, s.source_lsn, s.chunk_count, s.deleted
      FROM public.tidewire_document_state AS s
      JOIN w ON s.pipeline = w.pipeline AND s.document_id = w.document_id
      FOR UPDATE OF s
    ),
    d AS (
      SELECT w.*,
             prev.source_lsn AS prev_lsn,
             prev.chunk_count AS prev_count,
             prev.deleted AS prev_deleted,
             coalesce(w.tenant_id, prev.tenant_id) AS new_tenant,
             -- chunks = NULL keeps what is stored; with nothing stored there is nothing to keep,
             -- and the hash is then forgotten so that the next event embeds the text.
             (w.chunk_count IS NULL AND prev.deleted IS DISTINCT FROM false) AS nothing_to_keep,
             CASE WHEN w.is_delete THEN 0
                  WHEN w.chunk_count IS NOT NULL THEN w.chunk_count
                  WHEN prev.deleted IS DISTINCT FROM false THEN 0
                  ELSE prev.chunk_count END AS new_count
      FROM w LEFT JOIN prev ON prev.pipeline = w.pipeline AND prev.document_id = w.document_id
    ),
    st AS (
      INSERT INTO public.tidewire_document_state AS s
        (pipeline, document_id, tenant_id, source_lsn, source_committed_at, text_hash,
         chunk_count, deleted, model, indexed_at)
      SELECT d.pipeline, d.document_id, d.new_tenant, d.lsn, d.committed_at,
             CASE WHEN d.is_delete OR d.nothing_to_keep THEN '' ELSE d.text_hash END,
             d.new_count, d.is_delete,
             CASE WHEN d.is_delete OR d.chunk_count IS NULL THEN NULL ELSE d.model END,
             v_started
      FROM d
      WHERE d.prev_lsn IS NULL OR d.lsn >= d.prev_lsn
      ON CONFLICT (pipeline, document_id) DO UPDATE SET
        tenant_id = excluded.tenant_id,
        source_lsn = excluded.source_lsn,
        source_committed_at = excluded.source_committed_at,
        text_hash = excluded.text_hash,
        chunk_count = excluded.chunk_count,
        deleted = excluded.deleted,
        model = coalesce(excluded.model, s.model),
        indexed_at = excluded.indexed_at
      -- Checked again here: a concurrent writer may have inserted the row after `prev` looked.
      WHERE s.source_lsn <= excluded.source_lsn
      RETURNING s.pipeline, s.document_id
    ),
    applied AS (
      SELECT d.* FROM d JOIN st ON st.pipeline = d.pipeline AND st.document_id = d.document_id
    ),
    removed AS (
      -- Deletes (new_count 0) and texts that got shorter: every chunk past the new end goes.
      DELETE FROM public.tidewire_chunks AS c
      USING applied AS a
      WHERE c.pipeline = a.pipeline AND c.document_id = a.document_id AND c.chunk_index >= a.new_count
    ),
    refreshed AS (
      -- Text unchanged: the vectors stay, metadata and position move on.
      UPDATE public.tidewire_chunks AS c
      SET tenant_id = a.new_tenant, metadata = a.metadata, source_lsn = a.lsn,
          source_committed_at = a.committed_at, indexed_at = v_started
      FROM applied AS a
      WHERE a.chunk_count IS NULL AND NOT a.is_delete
        AND c.pipeline = a.pipeline AND c.document_id = a.document_id
        -- Untouched rows stay untouched: a row update re-inserts its vector into the HNSW index.
        AND (c.tenant_id, c.metadata) IS DISTINCT FROM (a.new_tenant, a.metadata)
    ),
    written AS (
      INSERT INTO public.tidewire_chunks AS c
        (pipeline, document_id, chunk_index, tenant_id, chunk_text, embedding, metadata, model,
         source_lsn, source_committed_at, indexed_at)
      SELECT a.pipeline, a.document_id, ch.chunk_index, a.new_tenant, ch.chunk_text, ch.embedding,
             a.metadata, a.model, a.lsn, a.committed_at, v_started
      FROM unnest(c_write, c_index, c_text, c_embedding) AS ch(ordinal, chunk_index, chunk_text, embedding)
      JOIN applied AS a ON a.ordinal = ch.ordinal
      ON CONFLICT (pipeline, document_id, chunk_index) DO UPDATE SET
        tenant_id = excluded.tenant_id,
        chunk_text = excluded.chunk_text,
        embedding = excluded.embedding,
        metadata = excluded.metadata,
        model = excluded.model,
        source_lsn = excluded.source_lsn,
        source_committed_at = excluded.source_committed_at,
        indexed_at = excluded.indexed_at
      -- A replayed or unchanged chunk is left alone (no dead tuple, no new HNSW entry); its
      -- source_lsn stays that of the write that last changed it.
      WHERE (c.tenant_id, c.chunk_text, c.embedding, c.metadata, c.model)
            IS DISTINCT FROM (excluded.tenant_id, excluded.chunk_text, excluded.embedding,
                              excluded.metadata, excluded.model)
    )
    SELECT d.ordinal,
           st.document_id IS NOT NULL,
           CASE WHEN st.document_id IS NOT NULL THEN d.is_delete ELSE coalesce(d.prev_deleted, false) END,
           CASE WHEN st.document_id IS NOT NULL THEN d.new_count ELSE coalesce(d.prev_count, 0) END,
           d.new_tenant,
           v_started
    FROM d LEFT JOIN st ON st.pipeline = d.pipeline AND st.document_id = d.document_id;
  END LOOP;
END
$function$
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE public.tidewire_chunks (
          pipeline            text        NOT NULL,
          document_id         text        NOT NULL,
          chunk_index         integer     NOT NULL CHECK (chunk_index >= 0),
          tenant_id           text        NOT NULL,
          chunk_text          text        NOT NULL,
          embedding           vector({DIMENSION}) NOT NULL,
          metadata            jsonb       NOT NULL DEFAULT '{{}}',
          model               text        NOT NULL,
          source_lsn          bigint      NOT NULL,
          source_committed_at timestamptz NOT NULL,
          indexed_at          timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (pipeline, document_id, chunk_index)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE public.tidewire_document_state (
          pipeline            text        NOT NULL,
          document_id         text        NOT NULL,
          tenant_id           text,
          source_lsn          bigint      NOT NULL,
          source_committed_at timestamptz NOT NULL,
          text_hash           text        NOT NULL DEFAULT '',
          chunk_count         integer     NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
          deleted             boolean     NOT NULL DEFAULT false,
          model               text,
          indexed_at          timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (pipeline, document_id)
        )
        """
    )
    op.execute(_WRITE_BATCH_FUNCTION)
    with op.get_context().autocommit_block():
        for name, definition in _CONCURRENT_INDEXES.items():
            _create_index_concurrently(name, definition)


def _create_index_concurrently(name: str, definition: str) -> None:
    invalid = op.get_bind().exec_driver_sql(
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %(name)s AND NOT i.indisvalid",
        {"name": name},
    )
    if invalid.first() is not None:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS public.{name}")
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS public.tidewire_write_batch("
        "integer[], text[], text[], text[], boolean[], bigint[], timestamptz[], text[], jsonb[], text[], "
        "integer[], integer[], integer[], text[], vector[])"
    )
    op.execute("DROP TABLE IF EXISTS public.tidewire_document_state")
    op.execute("DROP TABLE IF EXISTS public.tidewire_chunks")

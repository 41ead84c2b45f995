"""Per-pipeline truncate positions, so an older insert consumed after a TRUNCATE cannot index its row.

A Debezium truncate event has no key, so it lands on one partition, while an insert committed before
it (a lower LSN) may sit on another partition and be consumed after it. Up to 0005 the truncate only
tombstoned the document states that existed when it was applied: an older write of a known document
then lost under latest-wins, but a document with no state yet had nothing to lose against, and the
late insert brought back chunks of a row the source table no longer has.

- `tidewire_pipeline_truncations`: one row per pipeline, the highest truncate position applied
  (`truncated_lsn`, its source commit time `truncated_at`) and when it was recorded.
- `tidewire_truncate_pipeline(pipeline, lsn, committed_at)`: records the position (keeping the
  highest), tombstones every live document of the pipeline written before it and removes their
  chunks; returns how many documents it removed.
- `tidewire_write_batch(...)`: same arguments and result as in 0002; it now also skips (reports as not
  applied) every upsert or delete whose LSN is below its pipeline's truncate position. Still one call,
  one round trip per batch.

Why a lock: a truncate and a write batch of the same pipeline may run at the same moment on two
workers (the truncate's partition and the insert's are served by different workers). Under READ
COMMITTED neither would see the other's uncommitted rows, and the late insert would slip through. So
the truncate takes a transaction-scoped advisory lock on its pipeline exclusively, and a write batch
takes it shared (writers do not wait for each other) before it reads anything; each statement of a
plpgsql function takes a fresh snapshot, so whichever comes second sees what the first committed.

Downgrade drops the table and the truncate function and restores 0002's `tidewire_write_batch`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from alembic import op

from tidewire.database import revision_module

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WRITE_BATCH_SIGNATURE = (
    "public.tidewire_write_batch(integer[], text[], text[], text[], boolean[], bigint[], timestamptz[], "
    "text[], jsonb[], text[], integer[], integer[], integer[], text[], vector[])"
)
TRUNCATE_SIGNATURE = "public.tidewire_truncate_pipeline(text, bigint, timestamptz)"

# The advisory lock of one pipeline's truncates: (namespace, pipeline). A hash collision between two
# pipelines only makes one wait for the other's truncate, never lets a write through.
_LOCK_NAMESPACE = "hashtext('tidewire_pipeline_truncations')"

_TRUNCATE_FUNCTION = f"""
CREATE FUNCTION public.tidewire_truncate_pipeline(
  p_pipeline     text,
  p_lsn          bigint,
  p_committed_at timestamptz
) RETURNS integer
LANGUAGE plpgsql
AS $function$
DECLARE
  v_removed integer;
BEGIN
  -- Waits for the write batches of this pipeline in flight; those that start now wait for us.
  PERFORM pg_advisory_xact_lock({_LOCK_NAMESPACE}, hashtext(p_pipeline));
  -- The highest position wins: a replayed older truncate must not let older writes back in.
  INSERT INTO public.tidewire_pipeline_truncations AS t (pipeline, truncated_lsn, truncated_at, recorded_at)
  VALUES (p_pipeline, p_lsn, p_committed_at, clock_timestamp())
  ON CONFLICT (pipeline) DO UPDATE SET
    truncated_lsn = excluded.truncated_lsn,
    truncated_at = excluded.truncated_at,
    recorded_at = excluded.recorded_at
  WHERE t.truncated_lsn < excluded.truncated_lsn;
  -- A fresh snapshot (after the lock): every batch that wrote before us is visible here.
  WITH gone AS (
    UPDATE public.tidewire_document_state
    SET deleted = true, chunk_count = 0, text_hash = '', source_lsn = p_lsn,
        source_committed_at = p_committed_at, indexed_at = clock_timestamp()
    WHERE pipeline = p_pipeline AND source_lsn < p_lsn AND NOT deleted
    RETURNING document_id
  ),
  removed AS (
    DELETE FROM public.tidewire_chunks AS c
    USING gone
    WHERE c.pipeline = p_pipeline AND c.document_id = gone.document_id
  )
  SELECT count(*) INTO v_removed FROM gone;
  RETURN v_removed;
END
$function$
"""

# 0002's function with two changes, marked "0006": the shared truncate locks, and `below_truncate`.
_WRITE_BATCH_FUNCTION = f"""
CREATE OR REPLACE FUNCTION public.tidewire_write_batch(
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
  -- 0006: a truncate of one of these pipelines in flight finishes first, and none starts until this
  -- batch commits; the statements below take their snapshots after the locks. Sorted, so that two
  -- batches and a truncate always lock in the same order.
  PERFORM pg_advisory_xact_lock_shared({_LOCK_NAMESPACE}, hashtext(p.pipeline))
  FROM (SELECT DISTINCT pipeline FROM unnest(p_pipeline) AS pipeline ORDER BY pipeline) AS p;
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
             -- 0006: the row this write describes was truncated away at the source. A document
             -- with no state row has no tombstone to lose against, so this is checked here.
             coalesce(w.lsn < tr.truncated_lsn, false) AS below_truncate,
             -- chunks = NULL keeps what is stored; with nothing stored there is nothing to keep,
             -- and the hash is then forgotten so that the next event embeds the text.
             (w.chunk_count IS NULL AND prev.deleted IS DISTINCT FROM false) AS nothing_to_keep,
             CASE WHEN w.is_delete THEN 0
                  WHEN w.chunk_count IS NOT NULL THEN w.chunk_count
                  WHEN prev.deleted IS DISTINCT FROM false THEN 0
                  ELSE prev.chunk_count END AS new_count
      FROM w
      LEFT JOIN prev ON prev.pipeline = w.pipeline AND prev.document_id = w.document_id
      LEFT JOIN public.tidewire_pipeline_truncations AS tr ON tr.pipeline = w.pipeline
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
      WHERE (d.prev_lsn IS NULL OR d.lsn >= d.prev_lsn) AND NOT d.below_truncate
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
        """
        CREATE TABLE public.tidewire_pipeline_truncations (
          pipeline       text        PRIMARY KEY,
          truncated_lsn  bigint      NOT NULL,
          truncated_at   timestamptz NOT NULL,
          recorded_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(_TRUNCATE_FUNCTION)
    op.execute(_WRITE_BATCH_FUNCTION)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {TRUNCATE_SIGNATURE}")
    # 0002's definition, read from its own (frozen) revision rather than copied here, so the
    # downgrade restores it to the letter. It is a plain CREATE, hence the DROP first.
    previous_definition = str(revision_module("0002")._WRITE_BATCH_FUNCTION)
    op.execute(f"DROP FUNCTION IF EXISTS {WRITE_BATCH_SIGNATURE}")
    op.execute(previous_definition)
    op.execute("DROP TABLE IF EXISTS public.tidewire_pipeline_truncations")

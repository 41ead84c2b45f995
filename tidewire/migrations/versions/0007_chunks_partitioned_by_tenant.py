"""`tidewire_chunks` partitioned by tenant: one HNSW graph per tenant.

Up to 0006 every tenant's vectors shared one HNSW graph, and a search kept only its own tenant's rows
among the candidates the graph walk visited. When another tenant holds similar texts (the same corpus
twice is the extreme), about half of those candidates were lost to the filter, and holding recall at
0.95 took `hnsw.ef_search` 200: a third of all the CPU a search costs. pgvector's answer for filtering
on a column with many values is partitioning, which this revision does:

- `tidewire_chunks` is a table PARTITIONED BY LIST (tenant_id), with the same columns. Its primary key
  gains `tenant_id` (a partitioned table's unique keys must hold the partition key): (pipeline,
  document_id, chunk_index, tenant_id). Its indexes (HNSW, tenant btree, full-text GIN) keep their
  names and are built on every partition.
- `tidewire_chunks_default`, the DEFAULT partition, holds the rows of tenants without a partition of
  their own (none, as long as writers call the function below first; it is the safety net).
- `tidewire_ensure_tenant_partition(tenant)`: gives a tenant its own partition
  (`tidewire_chunks_t_<md5 of the tenant id>`, commented with the id) and moves its rows out of the
  default partition; true when it made one. The vector store calls it once per tenant and process
  before the first write of that tenant (tidewire/vector_store.py). Holding one advisory lock per
  tenant, concurrent callers make one partition.
- `tidewire_write_batch(...)`: 0006's function with two changes, marked "0007": upserts conflict on
  the new primary key, and new chunks of a document that changed tenant replace the chunks stored
  under the old tenant (which the key no longer matches).
- Row-level security, the API role's policy and its SELECT grant are set on the new table as 0005
  set them on the old one. Queries go through the partitioned table, where the policy applies; the API
  role has no privilege on a partition itself.

Upgrade moves every existing chunk: each tenant present gets its partition, then the rows are copied
and the indexes built per partition (about 10 s per 30,000 chunks); the table is locked meanwhile.
Downgrade copies the chunks back into one table with 0002/0004's indexes and 0005's policy, and restores
0006's write function.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op

from tidewire.database import changed_definition, revision_module

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PARTITION_PREFIX = "tidewire_chunks_t_"
ENSURE_PARTITION_SIGNATURE = "public.tidewire_ensure_tenant_partition(text)"

# The chunks table's secondary indexes, as 0002 and 0004 named and defined them.
_INDEXES = {
    "tidewire_chunks_embedding_hnsw_idx": "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
    "tidewire_chunks_tenant_idx": "(tenant_id, pipeline)",
    "tidewire_chunks_text_search_idx": "USING gin ((to_tsvector('english'::regconfig, chunk_text)))",
}

_ENSURE_PARTITION_FUNCTION = f"""
CREATE FUNCTION public.tidewire_ensure_tenant_partition(p_tenant text) RETURNS boolean
LANGUAGE plpgsql
AS $function$
DECLARE
  v_partition text := '{PARTITION_PREFIX}' || md5(p_tenant);
BEGIN
  IF to_regclass('public.' || v_partition) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- One maker per tenant; whoever waited here finds the partition made.
  PERFORM pg_advisory_xact_lock(hashtext('tidewire_ensure_tenant_partition'), hashtext(p_tenant));
  IF to_regclass('public.' || v_partition) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- Writes into the default partition wait while the tenant's rows move out of it.
  LOCK TABLE public.tidewire_chunks_default IN SHARE ROW EXCLUSIVE MODE;
  EXECUTE format(
    'CREATE TABLE public.%I (LIKE public.tidewire_chunks INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
    v_partition);
  EXECUTE format('INSERT INTO public.%I SELECT * FROM public.tidewire_chunks_default WHERE tenant_id = $1',
                 v_partition) USING p_tenant;
  DELETE FROM public.tidewire_chunks_default WHERE tenant_id = p_tenant;
  -- Attaching builds the table's indexes (the HNSW graph among them) on the rows just moved.
  EXECUTE format('ALTER TABLE public.tidewire_chunks ATTACH PARTITION public.%I FOR VALUES IN (%L)',
                 v_partition, p_tenant);
  EXECUTE format('COMMENT ON TABLE public.%I IS %L', v_partition, 'tidewire_chunks of tenant ' || p_tenant);
  RETURN true;
END
$function$
"""

# 0006's write function, changed where marked "0007" (the replacements below, each made exactly once).
_WRITE_BATCH_CHANGES = (
    (
        "      WHERE c.pipeline = a.pipeline AND c.document_id = a.document_id AND c.chunk_index >= a.new_count\n",
        "      WHERE c.pipeline = a.pipeline AND c.document_id = a.document_id\n"
        "        AND (c.chunk_index >= a.new_count\n"
        "             -- 0007: new chunks of a document that changed tenant replace those stored under the\n"
        "             -- old one, which the primary key (tenant_id is in it) does not match.\n"
        "             OR (a.chunk_count IS NOT NULL AND c.tenant_id IS DISTINCT FROM a.new_tenant))\n",
    ),
    (
        "      ON CONFLICT (pipeline, document_id, chunk_index) DO UPDATE SET\n",
        "      ON CONFLICT (pipeline, document_id, chunk_index, tenant_id) DO UPDATE SET  -- 0007\n",
    ),
)


def _write_batch_function() -> str:
    definition = str(revision_module("0006")._WRITE_BATCH_FUNCTION)
    return changed_definition(definition, _WRITE_BATCH_CHANGES, base="0006", revision="0007")


def _secure(table: str) -> None:
    """Row-level security, the API role's policy and its grant, as migration 0005 set them."""
    role_access = revision_module("0005")
    role = role_access._quoted(role_access._api_role())
    visible = role_access.API_TENANT_VISIBLE
    op.execute(f"ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tidewire_api_tenant_isolation ON public.{table} TO {role} "
        f"USING ({visible}) WITH CHECK ({visible})"
    )
    op.execute(f"GRANT SELECT ON public.{table} TO {role}")


def _create_indexes() -> None:
    for name, definition in _INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON public.tidewire_chunks {definition}")


def upgrade() -> None:
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")  # each partition's HNSW graph built in memory
    op.execute("ALTER TABLE public.tidewire_chunks RENAME TO tidewire_chunks_unpartitioned")
    op.execute(
        "ALTER TABLE public.tidewire_chunks_unpartitioned "
        "RENAME CONSTRAINT tidewire_chunks_pkey TO tidewire_chunks_unpartitioned_pkey"
    )
    for name in _INDEXES:
        op.execute(f"DROP INDEX public.{name}")
    op.execute(
        "CREATE TABLE public.tidewire_chunks ("
        "LIKE public.tidewire_chunks_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        "PRIMARY KEY (pipeline, document_id, chunk_index, tenant_id)"
        ") PARTITION BY LIST (tenant_id)"
    )
    op.execute("CREATE TABLE public.tidewire_chunks_default PARTITION OF public.tidewire_chunks DEFAULT")
    op.execute(_ENSURE_PARTITION_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {ENSURE_PARTITION_SIGNATURE} FROM PUBLIC")
    op.execute(
        "SELECT public.tidewire_ensure_tenant_partition(tenant_id) "
        "FROM (SELECT DISTINCT tenant_id FROM public.tidewire_chunks_unpartitioned) AS tenants"
    )
    op.execute("INSERT INTO public.tidewire_chunks SELECT * FROM public.tidewire_chunks_unpartitioned")
    _create_indexes()
    op.execute("DROP TABLE public.tidewire_chunks_unpartitioned")
    _secure("tidewire_chunks")
    op.execute(_write_batch_function())
    # Without statistics the planner would scan a big tenant's rows in full until autovacuum came by.
    op.execute("ANALYZE public.tidewire_chunks")


def downgrade() -> None:
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    op.execute(
        "CREATE TABLE public.tidewire_chunks_unpartitioned "
        "(LIKE public.tidewire_chunks INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    op.execute("INSERT INTO public.tidewire_chunks_unpartitioned SELECT * FROM public.tidewire_chunks")
    op.execute("DROP TABLE public.tidewire_chunks")  # and its partitions
    op.execute(f"DROP FUNCTION {ENSURE_PARTITION_SIGNATURE}")
    op.execute("ALTER TABLE public.tidewire_chunks_unpartitioned RENAME TO tidewire_chunks")
    op.execute("ALTER TABLE public.tidewire_chunks ADD PRIMARY KEY (pipeline, document_id, chunk_index)")
    _create_indexes()
    _secure("tidewire_chunks")
    op.execute(str(revision_module("0006")._WRITE_BATCH_FUNCTION))

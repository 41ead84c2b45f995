"""A vector search in one statement: `tidewire_vector_search`, which sets the tenant and runs the query.

The API ran each vector search as four statements, each a round trip: `BEGIN`, a `set_config` of the
tenant and the index settings, the query, `COMMIT`. The function does the same in one: called by
itself (the API's pooled connections are in autocommit), its statement is its own transaction, so the
tenant it sets with `set_config(..., true)` (SET LOCAL) ends with it, and a pooled connection never
carries a tenant into the next request. On the 2-core benchmark machine a search cost the API's event
loop 0.70 ms of CPU instead of 0.93 and Postgres 1.39 ms instead of 1.49 under load, and the p95 at 16
clients fell by about a tenth (docs/benchmarks.md). Postgres caches the plans of SQL-language
functions (PostgreSQL 18), so the query is not planned again on each call either.

- `tidewire_vector_search(tenant, embedding, filter, limit, ef_search, iterative_scan, max_scan_tuples)`
  runs as its caller (SECURITY INVOKER): row-level security binds the API role inside it exactly as
  outside, and the rows it may return are the tenant's it set. Its query is the API's vector query to
  the letter: ordered by the half-precision expression of the HNSW index (migrations 0009, 0014), scored
  in full precision. EXECUTE is granted to the API role only.

Downgrade drops the function.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""

from alembic import op

from tidewire.database import revision_module

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

DIMENSION = 384
SEARCH_SIGNATURE = "public.tidewire_vector_search(text, vector, jsonb, integer, integer, text, integer)"

_SEARCH_FUNCTION = f"""
CREATE FUNCTION public.tidewire_vector_search(
    p_tenant text, p_embedding vector, p_filter jsonb, p_limit integer,
    p_ef_search integer, p_iterative_scan text, p_max_scan_tuples integer
)
RETURNS TABLE (
    document_id text, chunk_index integer, chunk_text text, metadata jsonb, source_lsn bigint, score double precision
)
LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public
AS $function$
  SELECT set_config('tidewire.tenant_id', p_tenant, true),
         set_config('hnsw.ef_search', p_ef_search::text, true),
         set_config('hnsw.iterative_scan', p_iterative_scan, true),
         set_config('hnsw.max_scan_tuples', p_max_scan_tuples::text, true);
  SELECT c.document_id, c.chunk_index, c.chunk_text, c.metadata, c.source_lsn,
         1 - (c.embedding <=> p_embedding)
  FROM public.tidewire_chunks AS c
  WHERE c.tenant_id = p_tenant AND (p_filter IS NULL OR c.metadata @> p_filter)
  ORDER BY c.embedding::halfvec({DIMENSION}) <=> p_embedding::halfvec({DIMENSION})
  LIMIT p_limit;
$function$
"""


def _api_role() -> str:
    """The API role, quoted, as migration 0005 names it."""
    role_access = revision_module("0005")
    return str(role_access._quoted(role_access._api_role()))


def upgrade() -> None:
    op.execute(_SEARCH_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SEARCH_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SEARCH_SIGNATURE} TO {_api_role()}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SEARCH_SIGNATURE}")

"""Full-text index for hybrid search: GIN over the chunk text's tsvector.

Hybrid search (api/search.py) ranks chunks by `to_tsvector('english'::regconfig, chunk_text) @@ query`.
Postgres uses an expression index only for a query expression identical to the indexed one, so
api/search.py spells the expression exactly as `CHUNK_TSVECTOR` below (same text search
configuration, given as a regconfig: the two-argument form is IMMUTABLE, which an index requires).

The index is built CONCURRENTLY, outside the migration's transaction (`autocommit_block`), so that
migrating a live database does not block the stream workers writing chunks meanwhile. A failed
concurrent build leaves an INVALID index behind that `IF NOT EXISTS` would keep forever, so such a
leftover is dropped first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX_NAME = "tidewire_chunks_text_search_idx"
CHUNK_TSVECTOR = "to_tsvector('english'::regconfig, chunk_text)"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        invalid = op.get_bind().exec_driver_sql(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %(name)s AND NOT i.indisvalid",
            {"name": INDEX_NAME},
        )
        if invalid.first() is not None:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS public.{INDEX_NAME}")
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX_NAME} "
            f"ON public.tidewire_chunks USING gin (({CHUNK_TSVECTOR}))"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS public.{INDEX_NAME}")

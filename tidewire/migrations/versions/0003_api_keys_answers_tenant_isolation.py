"""Read API: API keys, stored chat answers (the semantic cache), tenant isolation by row-level security.

- `tidewire_api_keys`: one row per key; the key itself is never stored, only its lookup prefix
  (`key_id`, public) and an HMAC-SHA256 of the whole key (`key_hash`).
- `tidewire_answers`: every completed chat answer with its sources. A row whose
  `invalidated_at` is NULL is a live semantic-cache entry; a notification that touches one of its
  `source_documents` sets `invalidated_at`.
- Row-level security, ENABLEd and FORCEd (so it binds the owner too), on `tidewire_chunks`,
  `tidewire_document_state`, `tidewire_answers` and `tidewire_api_keys`.

How the policy tells the API from the writers (all connect as the one application role):
the API marks each of its pooled connections with the session setting `tidewire.scope = 'tenant'`
and sets `tidewire.tenant_id` per transaction (`set_config(..., true)`, i.e. SET LOCAL). On a
tenant-scoped connection a row is visible, and writable, only when its `tenant_id` equals that
transaction's tenant; a transaction that forgot to set the tenant sees nothing (fail closed), and a
pooled connection never carries a tenant into the next transaction. Connections without the scope
(the stream workers, migrations, the CLI) see every tenant, as P1/P2's writers need. This guards the
API against its own bugs, not against someone running arbitrary SQL as the application role
(who could change the setting): docs/api.md describes the dedicated-role hardening for that.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TENANT_TABLES = ("tidewire_chunks", "tidewire_document_state", "tidewire_answers")

# Visible on a tenant-scoped (API) connection only for that transaction's tenant; else everything.
TENANT_VISIBLE = """
    CASE WHEN current_setting('tidewire.scope', true) = 'tenant'
         THEN tenant_id = current_setting('tidewire.tenant_id', true)
         ELSE true
    END
"""
# API keys: the API may look keys up (before it knows the tenant) but never write them.
NOT_TENANT_SCOPED = "current_setting('tidewire.scope', true) IS DISTINCT FROM 'tenant'"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE public.tidewire_api_keys (
          key_id      text PRIMARY KEY,
          tenant_id   text NOT NULL,
          key_hash    bytea NOT NULL,
          name        text,
          created_at  timestamptz NOT NULL DEFAULT now(),
          revoked_at  timestamptz
        )
        """
    )
    op.execute("CREATE INDEX tidewire_api_keys_tenant_idx ON public.tidewire_api_keys (tenant_id)")
    op.execute(
        """
        CREATE TABLE public.tidewire_answers (
          answer_id           uuid PRIMARY KEY,
          tenant_id           text NOT NULL,
          question            text NOT NULL,
          question_embedding  vector(384) NOT NULL,
          answer              text NOT NULL,
          sources             jsonb NOT NULL,
          source_documents    text[] NOT NULL,
          provider            text NOT NULL,
          model               text,
          usage               jsonb NOT NULL DEFAULT '{}',
          created_at          timestamptz NOT NULL DEFAULT now(),
          invalidated_at      timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX tidewire_answers_cache_idx ON public.tidewire_answers "
        "USING hnsw (question_embedding vector_cosine_ops) WHERE invalidated_at IS NULL"
    )
    op.execute("CREATE INDEX tidewire_answers_tenant_idx ON public.tidewire_answers (tenant_id, created_at)")
    op.execute(
        "CREATE INDEX tidewire_answers_sources_idx ON public.tidewire_answers "
        "USING gin (source_documents) WHERE invalidated_at IS NULL"
    )
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE public.{table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tidewire_tenant_isolation ON public.{table} "
            f"USING ({TENANT_VISIBLE}) WITH CHECK ({TENANT_VISIBLE})"
        )
    op.execute("ALTER TABLE public.tidewire_api_keys ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE public.tidewire_api_keys FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY tidewire_api_keys_lookup ON public.tidewire_api_keys FOR SELECT USING (true)")
    for command in ("INSERT", "UPDATE", "DELETE"):
        clause = "WITH CHECK" if command == "INSERT" else "USING"
        op.execute(
            f"CREATE POLICY tidewire_api_keys_{command.lower()} ON public.tidewire_api_keys "
            f"FOR {command} {clause} ({NOT_TENANT_SCOPED})"
        )


def downgrade() -> None:
    for table in ("tidewire_chunks", "tidewire_document_state"):
        op.execute(f"DROP POLICY IF EXISTS tidewire_tenant_isolation ON public.{table}")
        op.execute(f"ALTER TABLE public.{table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE public.{table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP TABLE IF EXISTS public.tidewire_answers")
    op.execute("DROP TABLE IF EXISTS public.tidewire_api_keys")

"""The default source table `documents` and the tables change capture needs.

- `documents`: the default source table (DESIGN.md).
- `tidewire_heartbeat`: Debezium's heartbeat action query writes here, so the replication
  slot advances (and WAL is released) even while captured tables are idle.
- `tidewire_signal`: Debezium's signalling table (incremental snapshots on demand).
- publication `tidewire`: exactly the captured tables. It is created here, by the table owner,
  because the replication role does not own the tables and so cannot create it.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from tidewire.database import running_migration_config

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _replication_role() -> str:
    return str(running_migration_config().attributes["replication_role"])


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE public.documents (
          id         text PRIMARY KEY,
          tenant_id  text NOT NULL DEFAULT 'default',
          title      text,
          body       text,
          metadata   jsonb NOT NULL DEFAULT '{}',
          updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX documents_tenant_id_idx ON public.documents (tenant_id)")
    op.execute(
        """
        CREATE TABLE public.tidewire_heartbeat (
          id       smallint PRIMARY KEY,
          beat_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("INSERT INTO public.tidewire_heartbeat (id) VALUES (1)")
    op.execute(
        """
        CREATE TABLE public.tidewire_signal (
          id    varchar(64) PRIMARY KEY,
          type  varchar(32) NOT NULL,
          data  varchar(4096)
        )
        """
    )
    op.execute(
        "CREATE PUBLICATION tidewire FOR TABLE public.documents, public.tidewire_heartbeat, public.tidewire_signal"
    )
    role = _replication_role()
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    op.execute(f'GRANT SELECT ON public.documents TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON public.tidewire_heartbeat TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON public.tidewire_signal TO "{role}"')


def downgrade() -> None:
    op.execute("DROP PUBLICATION IF EXISTS tidewire")
    op.execute("DROP TABLE IF EXISTS public.tidewire_signal")
    op.execute("DROP TABLE IF EXISTS public.tidewire_heartbeat")
    op.execute("DROP TABLE IF EXISTS public.documents")
    op.execute(f'REVOKE USAGE ON SCHEMA public FROM "{_replication_role()}"')

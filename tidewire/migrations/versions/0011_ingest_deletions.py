"""Deletions made through `tidewire.ingest` are remembered, so an older upsert cannot bring a row back.

The ingest agent applies IngestDocument events latest-wins on `event_time`: an upsert or delete older
than the stored row is ignored. A DELETE removes the row, though, and with it the `updated_at` an older
event would lose against: an upsert published before the delete but consumed after it (another
producer, a retry, a replay) inserted the document again.

- `tidewire_ingest_deletions`: one row per (pipeline, document_id) deleted through ingest, with the
  latest `event_time` of its deletes. An upsert older than it is skipped. An upsert as new or newer
  wins, as with rows (the later event on a tie), and leaves the row: it stays the bound for older events.
  Like the vector store's deleted document states, these rows are kept.

Only the application role (the stream workers) uses it; the API role has no grant on it.

Downgrade drops the table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE public.tidewire_ingest_deletions (
          pipeline     text        NOT NULL,
          document_id  text        NOT NULL,
          deleted_at   timestamptz NOT NULL,
          PRIMARY KEY (pipeline, document_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS public.tidewire_ingest_deletions")

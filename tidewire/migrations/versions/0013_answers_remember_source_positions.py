"""A cached answer remembers the WAL position of each source document it was built on.

A cached answer used to be reusable unless one of its source documents had been indexed after the answer
was written (``indexed_at > created_at``). ``indexed_at`` is stamped when the write starts and
``created_at`` just before retrieval, so a write that started before the lookup but committed after the
retrieval read slipped through: the answer was built on the old text and still looked fresh.

- ``tidewire_answers.source_lsns``: for each of ``source_documents`` (same order), the ``source_lsn`` of the
  chunks retrieval read. A lookup reuses an answer only while every source document's state is still at
  or before that position (and still belongs to the tenant): exact, whatever the timing.

Answers stored before this migration have no positions and are not reused (they are regenerated once).

Downgrade drops the column.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE public.tidewire_answers ADD COLUMN source_lsns bigint[]")


def downgrade() -> None:
    op.execute("ALTER TABLE public.tidewire_answers DROP COLUMN source_lsns")

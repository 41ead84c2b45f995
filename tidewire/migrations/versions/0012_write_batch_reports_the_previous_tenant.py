"""The write function reports the tenant a document had before each write, so a tenant change tells it.

When a row's tenant column changes, its chunks move to the new tenant, and only the new tenant was
notified (`document.indexed`). The old tenant's `/v1/events` clients and webhooks never heard that the
document left, and its cached chat answers citing the document stayed valid for their whole age.

- `tidewire_write_batch(...)`: same arguments as in 0010, one more result column,
  `doc_previous_tenant_id`: the tenant of the document's live state row just before the write (read
  under the row's lock, after the batch's earlier rounds), for an applied write; NULL when the write was
  skipped, or the document was new or deleted. The stream workers send `document.deleted` to that
  tenant when it differs from the new one.

The result type changes, so the function is dropped and created again. Downgrade restores 0010's.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from alembic import op

from tidewire.database import changed_definition, revision_module

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# 0010's write function, changed where marked "0012" (each replacement made exactly once).
_WRITE_BATCH_CHANGES = (
    (
        "  doc_indexed_at  timestamptz\n)",
        "  doc_indexed_at  timestamptz,\n  doc_previous_tenant_id text  -- 0012\n)",
    ),
    (
        "             prev.deleted AS prev_deleted,\n",
        "             prev.deleted AS prev_deleted,\n             prev.tenant_id AS prev_tenant,  -- 0012\n",
    ),
    (
        "           d.new_tenant,\n           v_started\n",
        "           d.new_tenant,\n           v_started,\n"
        "           -- 0012: the tenant the applied write took the live document from.\n"
        "           CASE WHEN st.document_id IS NOT NULL AND d.prev_deleted = false THEN d.prev_tenant END\n",
    ),
)


def _write_batch_function() -> str:
    """0010's ``tidewire_write_batch`` with this revision's changes."""
    definition = str(revision_module("0010")._write_batch_function())
    return changed_definition(definition, _WRITE_BATCH_CHANGES, base="0010", revision="0012")


def _drop_write_batch_function() -> None:
    signature = str(revision_module("0006").WRITE_BATCH_SIGNATURE)
    op.execute(f"DROP FUNCTION IF EXISTS {signature}")


def upgrade() -> None:
    _drop_write_batch_function()
    op.execute(_write_batch_function())


def downgrade() -> None:
    _drop_write_batch_function()
    op.execute(revision_module("0010")._write_batch_function())

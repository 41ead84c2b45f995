"""Invalidating cached chat answers through the GIN index on their source documents.

Every batch of live notifications invalidates the tenant's cached answers (`tidewire_answers`, the
semantic cache) built on a document changed since. Run as the API role, row-level security keeps that
`UPDATE` away from the GIN index of migration 0003 (`tidewire_answers_sources_idx`): `&&` is not
LEAKPROOF, so the planner may not evaluate it before the policy, in an index. The `UPDATE` therefore read
every live answer of the tenant, once per batch: about 60 ms for 3,000 answers, and it grows with the
cache.

- `tidewire_invalidate_answers(documents, indexed_at)`: sets `invalidated_at` on the transaction's
  tenant's live answers that cite one of `documents` and were written before that document's
  `indexed_at`; returns how many. It runs as the table owner, to whom the policy does not apply, so the
  GIN index finds the candidate answers, and it confines itself to the transaction's tenant exactly as
  the policy does (`tidewire.tenant_id`, set per transaction); its caller chooses only the documents and
  their times. EXECUTE is granted to the API role only.

Downgrade drops the function.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from alembic import op

from tidewire.database import revision_module

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INVALIDATE_SIGNATURE = "public.tidewire_invalidate_answers(text[], timestamptz[])"

_INVALIDATE_FUNCTION = """
CREATE FUNCTION public.tidewire_invalidate_answers(p_documents text[], p_indexed_at timestamptz[])
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $function$
  WITH stale AS (
    SELECT a.answer_id
    FROM public.tidewire_answers AS a
    CROSS JOIN LATERAL unnest(a.source_documents) AS s(document_id)
    JOIN unnest(p_documents, p_indexed_at) AS n(document_id, indexed_at) ON n.document_id = s.document_id
    WHERE a.tenant_id = nullif(current_setting('tidewire.tenant_id', true), '')
      AND a.invalidated_at IS NULL
      AND a.source_documents && p_documents  -- the GIN index's condition
      AND a.created_at < n.indexed_at
  ),
  invalidated AS (
    UPDATE public.tidewire_answers AS a SET invalidated_at = now()
    WHERE a.answer_id IN (SELECT answer_id FROM stale) AND a.invalidated_at IS NULL
    RETURNING 1
  )
  SELECT count(*)::integer FROM invalidated
$function$
"""


def _api_role() -> str:
    """The API role, quoted, as migration 0005 names it."""
    role_access = revision_module("0005")
    return str(role_access._quoted(role_access._api_role()))


def upgrade() -> None:
    op.execute(_INVALIDATE_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {INVALIDATE_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {INVALIDATE_SIGNATURE} TO {_api_role()}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {INVALIDATE_SIGNATURE}")

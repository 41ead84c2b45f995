"""The read API's own database role, so that row-level security binds it by who it is.

Before this revision every process connected as the application role, the tables FORCEd row-level
security on their owner, and the API marked its connections with the session setting
`tidewire.scope = 'tenant'` (migration 0003), which anyone able to run SQL on such a connection
could reset. Now:

- The API connects as `api_role` (settings `postgres.api_user`, default `tidewire_api`): LOGIN,
  not a superuser, no BYPASSRLS, owner of nothing. Row-level security applies to every role that
  does not own the table; `SET row_security = off` only makes its queries fail, never see more.
- It gets exactly what the API reads and writes: SELECT on the chunks, the document state and the
  API keys; SELECT, INSERT, UPDATE on `tidewire_answers` (the semantic cache); EXECUTE on
  `tidewire_text_search`. Nothing on the source tables (`documents`), the CDC bookkeeping tables
  or Alembic's table.
- Its policy on `tidewire_chunks`, `tidewire_document_state` and `tidewire_answers`: a row is
  visible and writable only when its `tenant_id` equals the transaction's `tidewire.tenant_id`
  (set with `set_config(..., true)`, i.e. SET LOCAL); a transaction without a tenant sees nothing.
- Those three tables no longer FORCE row-level security and lose 0003's scope-marker policy: their
  owner is now only the writers' role (stream workers, migrations, the CLI), which reads and writes
  every tenant, as table owners do in Postgres. (Kept, 0003's policy would also have let the API
  role see every tenant, since policies are OR-ed and the API no longer sets the marker.)
- `tidewire_text_search(query, filter, limit)`: the full-text half of hybrid search. Row-level
  security evaluates a query's non-LEAKPROOF conditions only after the policy's, and `@@` is not
  LEAKPROOF, so under the API role's policy the planner may not use the GIN index of migration 0004
  (it filters the tenant's rows one by one instead). The function runs as the table owner, to whom
  the policy does not apply, and confines itself to the transaction's tenant exactly as the policy
  does; its caller can choose only the query text, a metadata filter and a limit. api/search.py
  joins its rows back to `tidewire_chunks` through the API role's policy, so a row of another
  tenant could not come back even through a bug here. Its tsvector expression is the index's, to
  the letter (an expression index serves only an identical expression).

The role itself is cluster-wide: `tidewire up` (tidewire/runtime/postgres.py) and the Compose
Postgres (infra/postgres/init.sql) create it. Where it does not exist yet and the migrating role may
create roles, it is created here; otherwise the migration stops and says how to create it.
Downgrade restores 0003's policies and FORCE, drops the function and revokes the grants; it leaves
the role (other databases of the cluster may use it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

from tidewire.database import running_migration_config
from tidewire.errors import ConfigurationError

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TENANT_TABLES = ("tidewire_chunks", "tidewire_document_state", "tidewire_answers")
API_GRANTS = {
    "tidewire_chunks": "SELECT",
    "tidewire_document_state": "SELECT",
    "tidewire_api_keys": "SELECT",
    "tidewire_answers": "SELECT, INSERT, UPDATE",
}
# 0003's policy, restored by downgrade.
SCOPE_MARKER_VISIBLE = """
    CASE WHEN current_setting('tidewire.scope', true) = 'tenant'
         THEN tenant_id = current_setting('tidewire.tenant_id', true)
         ELSE true
    END
"""
# The GIN index of migration 0004 is on exactly this expression.
CHUNK_TSVECTOR = "to_tsvector('english'::regconfig, c.chunk_text)"
TEXT_SEARCH_FUNCTION = f"""
CREATE FUNCTION public.tidewire_text_search(p_query text, p_filter jsonb, p_limit integer)
RETURNS TABLE (pipeline text, document_id text, chunk_index integer, score real)
LANGUAGE sql STABLE SECURITY DEFINER ROWS 100
SET search_path = pg_catalog, public
AS $function$
  SELECT c.pipeline, c.document_id, c.chunk_index, ts_rank_cd({CHUNK_TSVECTOR}, q) AS score
  FROM public.tidewire_chunks AS c, websearch_to_tsquery('english'::regconfig, p_query) AS q
  WHERE c.tenant_id = nullif(current_setting('tidewire.tenant_id', true), '')
    AND {CHUNK_TSVECTOR} @@ q
    AND (p_filter IS NULL OR c.metadata @> p_filter)
  ORDER BY score DESC, c.document_id, c.chunk_index
  LIMIT least(greatest(p_limit, 0), 1000)
$function$
"""
TEXT_SEARCH_SIGNATURE = "public.tidewire_text_search(text, jsonb, integer)"

# nullif: after a transaction that set a tenant ends, the setting reads '' rather than NULL, and a
# row whose tenant_id happens to be '' must not become visible to a transaction without a tenant.
API_TENANT_VISIBLE = "tenant_id = nullif(current_setting('tidewire.tenant_id', true), '')"


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _api_role() -> str:
    return str(running_migration_config().attributes["api_role"])


def _ensure_api_role(role: str) -> None:
    """The role exists and cannot bypass row-level security; created here when we may."""
    bind = op.get_bind()
    existing = bind.exec_driver_sql(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %(role)s", {"role": role}
    ).first()
    if existing is not None:
        if existing[0] or existing[1]:
            raise ConfigurationError(
                f"the API role {role!r} is a superuser or has BYPASSRLS, so row-level security would not "
                f"bind it: ALTER ROLE {_quoted(role)} NOSUPERUSER NOBYPASSRLS, or set postgres.api_user"
            )
        return
    may_create = bind.exec_driver_sql(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).scalar()
    if not may_create:
        raise ConfigurationError(
            f"the API role {role!r} does not exist and the migrating role may not create it: as a superuser, "
            f"CREATE ROLE {_quoted(role)} LOGIN PASSWORD '...' (no SUPERUSER, no BYPASSRLS); `tidewire up` "
            "does this for the local stack"
        )
    password = str(running_migration_config().attributes["api_password"]).replace("'", "''")
    op.execute(
        f"CREATE ROLE {_quoted(role)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
        f"NOBYPASSRLS PASSWORD '{password}'"
    )


def upgrade() -> None:
    role = _quoted(_api_role())
    _ensure_api_role(_api_role())
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    for table, privileges in API_GRANTS.items():
        op.execute(f"GRANT {privileges} ON public.{table} TO {role}")
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY tidewire_tenant_isolation ON public.{table}")
        op.execute(f"ALTER TABLE public.{table} NO FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tidewire_api_tenant_isolation ON public.{table} TO {role} "
            f"USING ({API_TENANT_VISIBLE}) WITH CHECK ({API_TENANT_VISIBLE})"
        )
    op.execute(TEXT_SEARCH_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {TEXT_SEARCH_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {TEXT_SEARCH_SIGNATURE} TO {role}")


def downgrade() -> None:
    role = _quoted(_api_role())
    op.execute(f"DROP FUNCTION IF EXISTS {TEXT_SEARCH_SIGNATURE}")
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY IF EXISTS tidewire_api_tenant_isolation ON public.{table}")
        op.execute(f"ALTER TABLE public.{table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tidewire_tenant_isolation ON public.{table} "
            f"USING ({SCOPE_MARKER_VISIBLE}) WITH CHECK ({SCOPE_MARKER_VISIBLE})"
        )
    for table, privileges in API_GRANTS.items():
        op.execute(f"REVOKE {privileges} ON public.{table} FROM {role}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")

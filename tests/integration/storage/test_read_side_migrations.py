"""Migrations 0004 (full-text GIN index), 0005 (the API's role) and 0008 (answer invalidation) in a
scratch database: each upgrade makes what it says, each downgrade restores the revision before it, the
hybrid search's full-text query, run as the API's role, is served by the GIN index, and so is the
invalidation of cached answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from api.search import _VECTOR_SQL as VECTOR_SQL
from api.search import TEXT_SQL, SearchService
from tidewire import database
from tidewire.settings import ApiSettings, PostgresSettings

TEXT_INDEX = "tidewire_chunks_text_search_idx"
HNSW_INDEX = "tidewire_chunks_embedding_hnsw_idx"
TENANT_TABLES = ("tidewire_chunks", "tidewire_document_state", "tidewire_answers")


def _query(postgres: PostgresSettings, sql: str, parameters: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres.dsn()) as connection:
        return connection.execute(sql, parameters).fetchall()


def _index_scans(connection: psycopg.Connection[Any], index: str) -> int:
    """Index scans of ``index`` so far in this transaction, summed over its partitions if it has any
    (the chunks table is partitioned by tenant from 0007 on)."""
    row = connection.execute(
        "SELECT sum(pg_stat_get_xact_numscans(relid)) FROM "
        "(SELECT relid FROM pg_partition_tree(%(index)s::regclass) UNION SELECT %(index)s::regclass) AS tree",
        {"index": index},
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _execute_rights(postgres: PostgresSettings, name: str, signature: str) -> tuple[bool, bool]:
    """Whether the API role, and whether PUBLIC, may execute function ``name`` (``signature``)."""
    (api_may, public_may) = _query(
        postgres,
        "SELECT has_function_privilege(%s, %s, 'EXECUTE'), "
        "(SELECT coalesce(bool_or(a.grantee = 0), false) FROM pg_proc p, aclexplode(p.proacl) a "
        " WHERE p.proname = %s)",
        (postgres.api_user, signature, name),
    )[0]
    return bool(api_may), bool(public_may)


def _text_index(postgres: PostgresSettings) -> tuple[str, bool] | None:
    """The index's definition and validity, or None when it does not exist."""
    rows = _query(
        postgres,
        "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
        (TEXT_INDEX,),
    )
    return (rows[0][0], rows[0][1]) if rows else None


def _security(postgres: PostgresSettings) -> dict[str, Any]:
    """Everything 0005 changes: policies, FORCE, the API role's privileges, the search function."""
    role = postgres.api_user
    policies = _query(
        postgres,
        "SELECT tablename, policyname, roles::text, qual FROM pg_policies WHERE schemaname = 'public' "
        "ORDER BY 1, 2",
    )
    forced = _query(
        postgres,
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relname LIKE 'tidewire%%' AND relkind = 'r' "
        "ORDER BY 1",
    )
    privileges = _query(
        postgres,
        "SELECT c.relname, p.privilege FROM pg_class c "
        "CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege) "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
        "  AND has_table_privilege(%s, c.oid, p.privilege) ORDER BY 1, 2",
        (role,),
    )
    functions = _query(
        postgres,
        "SELECT proname, prosecdef FROM pg_proc WHERE pronamespace = 'public'::regnamespace "
        "AND proname LIKE 'tidewire%%' ORDER BY 1",
    )
    return {"policies": policies, "forced": forced, "privileges": privileges, "functions": functions}


def test_0004_builds_the_gin_index_concurrently_and_downgrade_drops_it(
    scratch_database: PostgresSettings,
) -> None:
    database.upgrade(scratch_database, "0003")
    assert _text_index(scratch_database) is None
    database.upgrade(scratch_database, "0004")
    index = _text_index(scratch_database)
    assert index is not None
    definition, valid = index
    assert valid
    assert "USING gin (to_tsvector('english'::regconfig, chunk_text))" in definition

    database.downgrade(scratch_database, "0003")
    assert _text_index(scratch_database) is None
    database.upgrade(scratch_database, "0004")
    assert _text_index(scratch_database) == index


def test_0005_gives_the_api_role_its_grants_and_policy_and_downgrade_restores_0004(
    scratch_database: PostgresSettings,
) -> None:
    database.upgrade(scratch_database, "0004")
    at_0004 = _security(scratch_database)
    database.upgrade(scratch_database, "0005")
    at_0005 = _security(scratch_database)

    assert at_0005["privileges"] == [
        ("tidewire_answers", "INSERT"),
        ("tidewire_answers", "SELECT"),
        ("tidewire_answers", "UPDATE"),
        ("tidewire_api_keys", "SELECT"),
        ("tidewire_chunks", "SELECT"),
        ("tidewire_document_state", "SELECT"),
    ]
    api_policies = {row[0]: row for row in at_0005["policies"] if row[1] == "tidewire_api_tenant_isolation"}
    assert set(api_policies) == set(TENANT_TABLES)
    assert all(row[2] == "{" + scratch_database.api_user + "}" for row in api_policies.values())
    assert not [row for row in at_0005["policies"] if row[1] == "tidewire_tenant_isolation"]
    forced = {name: force for name, _, force in at_0005["forced"]}
    assert not any(forced[table] for table in TENANT_TABLES)
    assert ("tidewire_text_search", True) in at_0005["functions"]  # SECURITY DEFINER
    may_execute, public_may_execute = _execute_rights(
        scratch_database, "tidewire_text_search", "public.tidewire_text_search(text, jsonb, integer)"
    )
    assert may_execute
    assert not public_may_execute

    database.downgrade(scratch_database, "0004")
    assert _security(scratch_database) == at_0004
    database.upgrade(scratch_database, "0005")
    assert _security(scratch_database) == at_0005


@pytest.fixture
def searchable_chunks(scratch_database: PostgresSettings) -> PostgresSettings:
    """The scratch database at head with 3,000 chunks of tenant ``big`` (one mentions a quokka) and
    one quokka chunk of tenant ``other``, analysed."""
    database.upgrade(scratch_database, "head")
    words = [
        "light",
        "darkness",
        "water",
        "earth",
        "heaven",
        "shepherd",
        "pasture",
        "commandment",
        "charity",
        "kindness",
    ]
    rows = [
        ("big", f"doc-{n}", " ".join(words[(n + shift) % len(words)] for shift in range(8)))
        for n in range(3_000)
    ]
    rows[1234] = ("big", "doc-1234", "the quokka smiled at the shepherd")
    rows.append(("other", "other-1", "a quokka of another tenant"))
    with psycopg.connect(scratch_database.dsn()) as connection:
        register_vector(connection)
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO tidewire_chunks (pipeline, document_id, chunk_index, tenant_id, chunk_text, "
                "embedding, model, source_lsn, source_committed_at) "
                "VALUES ('documents', %s, 0, %s, %s, %s, 'test', 1, now())",
                [
                    (document_id, tenant, text, np.ones(384, dtype=np.float32))
                    for tenant, document_id, text in rows
                ],
            )
        connection.commit()
        connection.execute("ANALYZE tidewire_chunks")
    return scratch_database


def test_the_full_text_query_uses_the_gin_index_as_the_api_role(searchable_chunks: PostgresSettings) -> None:
    parameters = {"tenant": "big", "text": "quokka", "filter": None, "limit": 40}
    with psycopg.connect(searchable_chunks.api_dsn()) as connection, connection.transaction():
        connection.execute("SELECT set_config('tidewire.tenant_id', 'big', true)")
        connection.execute("SET LOCAL enable_seqscan = off")
        before = _index_scans(connection, TEXT_INDEX)
        rows = connection.execute(TEXT_SQL, parameters).fetchall()
        after = _index_scans(connection, TEXT_INDEX)
    # The counter moves only when an index scan of the GIN index ran: the query and the index
    # share the tsvector expression, and row-level security did not keep the planner from it.
    assert after > before
    assert [(row[0], row[2]) for row in rows] == [("doc-1234", "the quokka smiled at the shepherd")]


def test_the_full_text_function_keeps_to_the_transactions_tenant(searchable_chunks: PostgresSettings) -> None:
    call = "SELECT document_id FROM tidewire_text_search('quokka', NULL, 40)"
    with psycopg.connect(searchable_chunks.api_dsn()) as connection:
        assert connection.execute(call).fetchall() == []  # no tenant: nothing
        connection.rollback()
        with connection.transaction():
            connection.execute("SELECT set_config('tidewire.tenant_id', 'other', true)")
            assert connection.execute(call).fetchall() == [("other-1",)]


INVALIDATE = "public.tidewire_invalidate_answers"
INVALIDATE_SIGNATURE = f"{INVALIDATE}(text[], timestamptz[])"


def test_0008_adds_the_answer_invalidation_function_for_the_api_role_only(
    scratch_database: PostgresSettings,
) -> None:
    database.upgrade(scratch_database, "0007")
    at_0007 = _security(scratch_database)
    database.upgrade(scratch_database, "0008")
    at_0008 = _security(scratch_database)
    assert set(at_0008["functions"]) - set(at_0007["functions"]) == {("tidewire_invalidate_answers", True)}
    api_may, public_may = _execute_rights(
        scratch_database, "tidewire_invalidate_answers", INVALIDATE_SIGNATURE
    )
    assert api_may and not public_may

    database.downgrade(scratch_database, "0007")
    assert _security(scratch_database) == at_0007
    database.upgrade(scratch_database, "0008")
    assert _security(scratch_database) == at_0008


def test_answer_invalidation_keeps_to_the_tenant_and_its_time_and_uses_the_gin_index(
    scratch_database: PostgresSettings,
) -> None:
    database.upgrade(scratch_database, "head")
    now = datetime.now(UTC)
    # (tenant, answer, cited documents, written how long before the change was indexed)
    cited = [
        ("a", "stale", ["d1", "d2"], 60),
        ("a", "other-document", ["d3"], 60),
        ("a", "newer", ["d1"], -60),
    ]
    cited += [("b", "other-tenant", ["d1"], 60)]
    cited += [("a", f"filler-{n}", [f"f{n}", f"g{n}"], 60) for n in range(2_000)]  # so that an index pays
    with psycopg.connect(scratch_database.dsn()) as connection:
        register_vector(connection)
        connection.cursor().executemany(
            "INSERT INTO tidewire_answers (answer_id, tenant_id, question, question_embedding, answer, sources, "
            "source_documents, provider, created_at) VALUES (%s, %s, %s, %s, 'an answer', '[]', %s, 'test', %s)",
            [
                (uuid.uuid5(uuid.NAMESPACE_URL, name), tenant, name, np.ones(384, dtype=np.float32), documents,
                 now - timedelta(seconds=age))
                for tenant, name, documents, age in cited
            ],
        )  # fmt: skip
        connection.commit()
        connection.execute("ANALYZE tidewire_answers")
    with psycopg.connect(scratch_database.api_dsn()) as connection, connection.transaction():
        connection.execute("SELECT set_config('tidewire.tenant_id', 'a', true)")
        before = _index_scans(connection, "tidewire_answers_sources_idx")
        (count,) = connection.execute(f"SELECT {INVALIDATE}(%s, %s)", (["d1"], [now])).fetchone() or (0,)
        after = _index_scans(connection, "tidewire_answers_sources_idx")
    invalidated = _query(
        scratch_database, "SELECT question FROM tidewire_answers WHERE invalidated_at IS NOT NULL"
    )
    assert (count, invalidated) == (1, [("stale",)])
    assert after > before
    with psycopg.connect(scratch_database.api_dsn()) as connection:
        # No tenant set: nothing is touched.
        assert connection.execute(f"SELECT {INVALIDATE}(%s, %s)", (["d3"], [now])).fetchone() == (0,)


def test_the_vector_query_walks_the_hnsw_index_as_the_api_role(searchable_chunks: PostgresSettings) -> None:
    # The query orders by the index's expression (half precision, migration 0009); ordered by anything
    # else it would still answer, by a scan and sort of every row of the tenant.
    settings = SearchService(None, ApiSettings())._index_settings  # type: ignore[arg-type]
    parameters = {"tenant": "big", "embedding": np.ones(384, dtype=np.float32), "filter": None, "limit": 10}
    with psycopg.connect(searchable_chunks.api_dsn()) as connection, connection.transaction():
        register_vector(connection)
        connection.execute("SELECT set_config('tidewire.tenant_id', 'big', true)")
        for name, value in settings.items():
            connection.execute("SELECT set_config(%s, %s, true)", (name, value))
        before = _index_scans(connection, HNSW_INDEX)
        rows = connection.execute(VECTOR_SQL, parameters).fetchall()
        after = _index_scans(connection, HNSW_INDEX)
    assert after > before
    assert len(rows) == 10

"""Migrations 0002, 0006, 0007, 0009, 0010, 0011, 0012, 0013, 0014 and 0015 in a scratch database: upgrade creates, downgrade removes
exactly what it made (and 0007 moves the chunks there and back)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from tests.integration.storage.conftest import tenant_partition
from tidewire import database
from tidewire.settings import PostgresSettings

T = TypeVar("T")


def _schema(postgres: PostgresSettings) -> dict[str, set[str]]:
    with psycopg.connect(postgres.dsn()) as connection:
        tables = {
            r[0] for r in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        indexes = {
            r[0]
            for r in connection.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND i.indisvalid"
            )
        }
        functions = {
            r[0]
            for r in connection.execute(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'tidewire%'"
            )
        }
    return {"tables": tables, "indexes": indexes, "functions": functions}


def test_upgrade_then_downgrade_restores_0001(scratch_database: PostgresSettings) -> None:
    database.upgrade(scratch_database, "0001")
    at_0001 = _schema(scratch_database)
    database.upgrade(scratch_database, "0002")
    at_0002 = _schema(scratch_database)
    assert at_0002["tables"] - at_0001["tables"] == {"tidewire_chunks", "tidewire_document_state"}
    assert {"tidewire_chunks_embedding_hnsw_idx", "tidewire_chunks_tenant_idx"} <= at_0002["indexes"]
    assert at_0002["functions"] == {"tidewire_write_batch"}
    with psycopg.connect(scratch_database.dsn()) as connection:
        (owner,) = connection.execute(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'tidewire_chunks'"
        ).fetchone() or ("",)
        (method,) = connection.execute(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
            "WHERE c.relname = 'tidewire_chunks_embedding_hnsw_idx'"
        ).fetchone() or ("",)
    assert owner == scratch_database.user
    assert method == "hnsw"

    database.downgrade(scratch_database, "0001")
    assert _schema(scratch_database) == at_0001
    database.upgrade(scratch_database, "0002")
    assert _schema(scratch_database) == at_0002


def _function_definitions(postgres: PostgresSettings) -> dict[str, str]:
    with psycopg.connect(postgres.dsn()) as connection:
        return {
            name: definition
            for name, definition in connection.execute(
                "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
                "WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'tidewire%'"
            )
        }


def test_0006_adds_truncate_positions_and_downgrade_restores_0005(scratch_database: PostgresSettings) -> None:
    database.upgrade(scratch_database, "0005")
    at_0005 = _schema(scratch_database), _function_definitions(scratch_database)
    database.upgrade(scratch_database, "0006")
    at_0006 = _schema(scratch_database), _function_definitions(scratch_database)

    schema, functions = at_0006
    assert schema["tables"] - at_0005[0]["tables"] == {"tidewire_pipeline_truncations"}
    assert set(functions) - set(at_0005[1]) == {"tidewire_truncate_pipeline"}
    assert "tidewire_pipeline_truncations" in functions["tidewire_write_batch"]
    assert functions["tidewire_write_batch"] != at_0005[1]["tidewire_write_batch"]

    database.downgrade(scratch_database, "0005")
    # 0002's write function to the letter, the table and the truncate function gone.
    assert (_schema(scratch_database), _function_definitions(scratch_database)) == at_0005
    database.upgrade(scratch_database, "0006")
    assert (_schema(scratch_database), _function_definitions(scratch_database)) == at_0006


def _chunks_by_tenant(postgres: PostgresSettings) -> dict[str, list[tuple[str, int, str]]]:
    """Each partition of ``tidewire_chunks`` (or the table itself): the (document, chunk, tenant)
    rows it holds, read through its parent."""
    with psycopg.connect(postgres.dsn()) as connection:
        rows = connection.execute(
            "SELECT tableoid::regclass::text, document_id, chunk_index, tenant_id FROM tidewire_chunks "
            "ORDER BY 2, 3"
        ).fetchall()
    held: dict[str, list[tuple[str, int, str]]] = {}
    for table, document_id, chunk_index, tenant_id in rows:
        held.setdefault(table, []).append((document_id, chunk_index, tenant_id))
    return held


def _policies(postgres: PostgresSettings) -> list[tuple[str, str, str]]:
    with psycopg.connect(postgres.dsn()) as connection:
        return connection.execute(
            "SELECT tablename, policyname, roles::text FROM pg_policies "
            "WHERE schemaname = 'public' AND tablename = 'tidewire_chunks'"
        ).fetchall()


def _api_reads(postgres: PostgresSettings, tenant: str) -> list[str]:
    with psycopg.connect(postgres.api_dsn()) as connection, connection.transaction():
        connection.execute("SELECT set_config('tidewire.tenant_id', %s, true)", (tenant,))
        return [row[0] for row in connection.execute("SELECT document_id FROM tidewire_chunks ORDER BY 1")]


def test_0007_gives_every_tenant_its_own_partition_and_downgrade_restores_0006(
    scratch_database: PostgresSettings,
) -> None:
    database.upgrade(scratch_database, "0006")
    with psycopg.connect(scratch_database.dsn()) as connection:
        register_vector(connection)
        connection.cursor().executemany(
            "INSERT INTO tidewire_chunks (pipeline, document_id, chunk_index, tenant_id, chunk_text, "
            "embedding, model, source_lsn, source_committed_at) "
            "VALUES ('documents', %s, %s, %s, 'text', %s, 'test', 1, now())",
            [
                (document_id, index, tenant, np.full(384, 0.1 + index, dtype=np.float32))
                for document_id, index, tenant in [
                    ("a-1", 0, "alpha"),
                    ("a-1", 1, "alpha"),
                    ("b-1", 0, "it's b"),
                ]
            ],
        )
    at_0006 = _schema(scratch_database), _function_definitions(scratch_database), _policies(scratch_database)
    rows_at_0006 = _chunks_by_tenant(scratch_database)
    assert list(rows_at_0006) == ["tidewire_chunks"]

    database.upgrade(scratch_database, "0007")
    held = _chunks_by_tenant(scratch_database)
    # One partition per tenant, named after the md5 of its id; nothing left in the default one.
    assert held == {
        tenant_partition(tenant): [row for row in rows_at_0006["tidewire_chunks"] if row[2] == tenant]
        for tenant in ("alpha", "it's b")
    }
    with psycopg.connect(scratch_database.dsn()) as connection:
        (kind,) = connection.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'tidewire_chunks'"
        ).fetchone() or ("",)
        hnsw_partitions = connection.execute(
            "SELECT count(*) FROM pg_partition_tree('tidewire_chunks_embedding_hnsw_idx') WHERE isleaf"
        ).fetchone()
    assert kind == "p"
    assert hnsw_partitions == (3,)  # the two tenants' and the default partition's
    assert _policies(scratch_database) == at_0006[2]
    assert _api_reads(scratch_database, "alpha") == ["a-1", "a-1"]
    assert _api_reads(scratch_database, "it's b") == ["b-1"]
    assert "tenant_id) DO UPDATE" in _function_definitions(scratch_database)["tidewire_write_batch"]

    database.downgrade(scratch_database, "0006")
    assert (
        _schema(scratch_database),
        _function_definitions(scratch_database),
        _policies(scratch_database),
    ) == at_0006
    assert _chunks_by_tenant(scratch_database) == rows_at_0006
    assert _api_reads(scratch_database, "alpha") == ["a-1", "a-1"]


def _around(postgres: PostgresSettings, revision: str, read: Callable[[PostgresSettings], T]) -> tuple[T, T]:
    """``read`` before and after migration ``revision``; checks that its downgrade restores the before."""
    previous = f"{int(revision) - 1:04d}"
    database.upgrade(postgres, previous)
    before = read(postgres)
    database.upgrade(postgres, revision)
    after = read(postgres)
    database.downgrade(postgres, previous)
    assert read(postgres) == before
    return before, after


def _hnsw_index_definition(postgres: PostgresSettings) -> str:
    with psycopg.connect(postgres.dsn()) as connection:
        (definition,) = connection.execute(
            "SELECT pg_get_indexdef('tidewire_chunks_embedding_hnsw_idx'::regclass)"
        ).fetchone() or ("",)
    return str(definition)


def test_0009_indexes_half_precision_vectors_and_downgrade_restores_full_precision(
    scratch_database: PostgresSettings,
) -> None:
    at_0008, at_0009 = _around(scratch_database, "0009", _hnsw_index_definition)
    assert "(embedding vector_cosine_ops)" in at_0008
    assert "((embedding)::halfvec(384)) halfvec_cosine_ops" in at_0009
    assert "m='16'" in at_0009 and "ef_construction='64'" in at_0009


def test_0014_rebuilds_the_graph_with_m_12_and_ef_construction_128_and_downgrade_restores_0009s(
    scratch_database: PostgresSettings,
) -> None:
    at_0013, at_0014 = _around(scratch_database, "0014", _hnsw_index_definition)
    assert "m='16'" in at_0013 and "ef_construction='64'" in at_0013
    assert "m='12'" in at_0014 and "ef_construction='128'" in at_0014
    assert "((embedding)::halfvec(384)) halfvec_cosine_ops" in at_0014  # still the half-precision graph


def _write_function_definition(postgres: PostgresSettings) -> str:
    return _function_definitions(postgres)["tidewire_write_batch"]


def test_0010_confines_the_write_function_to_the_batch_tenants_and_downgrade_restores_0007s(
    scratch_database: PostgresSettings,
) -> None:
    at_0009, at_0010 = _around(scratch_database, "0010", _write_function_definition)
    assert "v_tenants" not in at_0009
    assert at_0010.count("c.tenant_id = ANY (v_tenants)") == 2
    assert "FOR UPDATE OF s" in at_0010.split("FOR v_round IN")[0]


def _columns(postgres: PostgresSettings, table: str) -> list[tuple[str, str]]:
    with psycopg.connect(postgres.dsn()) as connection:
        rows = connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def _ingest_deletions_columns(postgres: PostgresSettings) -> list[tuple[str, str]]:
    return _columns(postgres, "tidewire_ingest_deletions")


def _answers_columns(postgres: PostgresSettings) -> list[tuple[str, str]]:
    return _columns(postgres, "tidewire_answers")


def test_0011_adds_the_ingest_deletions_table_and_downgrade_drops_it(
    scratch_database: PostgresSettings,
) -> None:
    at_0010, at_0011 = _around(scratch_database, "0011", _ingest_deletions_columns)
    assert at_0010 == []
    assert at_0011 == [
        ("pipeline", "text"),
        ("document_id", "text"),
        ("deleted_at", "timestamp with time zone"),
    ]


def test_0012_reports_the_previous_tenant_and_downgrade_restores_0010s(
    scratch_database: PostgresSettings,
) -> None:
    at_0011, at_0012 = _around(scratch_database, "0012", _write_function_definition)
    assert "doc_previous_tenant_id" not in at_0011
    assert "doc_previous_tenant_id text" in at_0012 and "prev.tenant_id AS prev_tenant" in at_0012
    assert at_0012.count("c.tenant_id = ANY (v_tenants)") == 2  # 0010's changes stay


def test_0013_gives_answers_their_source_positions_and_downgrade_drops_them(
    scratch_database: PostgresSettings,
) -> None:
    at_0012, at_0013 = _around(scratch_database, "0013", _answers_columns)
    assert set(at_0013) - set(at_0012) == {("source_lsns", "ARRAY")}
    assert set(at_0012) <= set(at_0013)


def _vector_search_function(postgres: PostgresSettings) -> tuple[str, str] | None:
    """The definition and access list of ``tidewire_vector_search``; None when it does not exist."""
    with psycopg.connect(postgres.dsn()) as connection:
        row = connection.execute(
            "SELECT pg_get_functiondef(oid), coalesce(proacl::text, '') FROM pg_proc "
            "WHERE proname = 'tidewire_vector_search' AND pronamespace = 'public'::regnamespace"
        ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def test_0015_adds_the_one_statement_vector_search_for_the_api_role_only_and_downgrade_drops_it(
    scratch_database: PostgresSettings,
) -> None:
    at_0014, at_0015 = _around(scratch_database, "0015", _vector_search_function)
    assert at_0014 is None and at_0015 is not None
    definition, access = at_0015
    assert "SECURITY DEFINER" not in definition  # row-level security binds its caller inside it
    assert "set_config('tidewire.tenant_id', p_tenant, true)" in definition
    # The half-precision expression of the HNSW index (0009, 0014), to the letter, or the index is unused.
    assert "c.embedding::halfvec(384) <=> p_embedding::halfvec(384)" in definition
    grantees = {
        entry.split("=")[0] for entry in access.strip("{}").split(",") if "=X" in entry or "X/" in entry
    }
    assert scratch_database.api_user in grantees and "" not in grantees  # "" is PUBLIC

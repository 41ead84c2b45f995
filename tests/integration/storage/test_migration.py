"""Migrations 0002 and 0006 in a scratch database: upgrade creates, downgrade removes exactly what it made."""

from __future__ import annotations

import psycopg

from tidewire import database
from tidewire.settings import PostgresSettings


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

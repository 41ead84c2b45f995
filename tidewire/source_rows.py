"""Reading current rows of a pipeline's source table by primary key.

Debezium cannot send a TOASTed column that an UPDATE left untouched (with REPLICA IDENTITY DEFAULT
the old value is not in the WAL); it sends ``__tidewire_unavailable__`` instead. The streams side
then re-reads the row here rather than embed the placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from tidewire.errors import StorageError, VectorStoreUnavailableError, first_line
from tidewire.pipeline_spec import PipelineSpec
from tidewire.vector_store import autocommit_connection


async def fetch_source_rows(
    pool: psycopg_pool.AsyncConnectionPool, spec: PipelineSpec, document_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Current rows of the source table by primary key, in one query; ids no longer there are absent.

    Rows come as Postgres renders them in JSON (``to_jsonb``): text as str, numbers as numbers,
    jsonb as dicts, timestamps as ISO strings. Keys are the primary key as text (the document id).
    """
    if not document_ids:
        return {}
    query = sql.SQL("SELECT to_jsonb(t) FROM {table} AS t WHERE t.{key} = ANY(%s)").format(
        table=sql.Identifier(spec.schema_name, spec.table_name), key=sql.Identifier(spec.primary_key)
    )
    # An array literal sent untyped: Postgres reads it as an array of the key column's own type,
    # so the primary key index serves the lookup whatever that type is (text, integer, uuid...).
    ids_literal = _array_literal(document_ids)
    try:
        async with autocommit_connection(pool) as connection, connection.cursor() as cursor:
            await cursor.execute(query, (ids_literal,))
            rows = await cursor.fetchall()
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as error:
        raise VectorStoreUnavailableError(
            f"cannot read {spec.source_table} (pipeline {spec.name}): Postgres is unreachable; retry"
        ) from error
    except psycopg.Error as error:
        raise StorageError(
            f"cannot read {spec.source_table} (pipeline {spec.name}): {first_line(error)}; "
            "check the pipeline spec with `tidewire connector apply`"
        ) from error
    return {str(row[spec.primary_key]): row for (row,) in rows}


def _array_literal(values: Sequence[str]) -> str:
    escaped = (str(value).replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in escaped) + "}"

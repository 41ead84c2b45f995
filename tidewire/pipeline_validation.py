"""Checking pipeline specs against the live database, before any connector captures their tables.

Static checks (names, template syntax) run when settings load (:mod:`tidewire.pipeline_spec`).
Here each spec meets its table: it must exist, be a plain or partitioned table, have a single-column
primary key equal to the spec's ``primary_key``, and have every column the spec reads (template,
metadata, tenant). All problems of all pipelines are reported at once, in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import psycopg

from tidewire.errors import ConfigurationError, ServiceError
from tidewire.pipeline_spec import PipelineSpec
from tidewire.settings import PostgresSettings

# Tables only: a view or a foreign table has no WAL for Debezium to read.
_TABLE_SHAPE_SQL = """
SELECT c.relkind,
       pg_get_userbyid(c.relowner),
       c.relreplident,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT a.attname::text FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.n)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""

_REPLICA_IDENTITY = {"d": "default", "n": "nothing", "f": "full", "i": "index"}


@dataclass(frozen=True)
class SourceTable:
    """What the database says about a pipeline's source table."""

    pipeline: str
    table: str  # schema.table
    owner: str
    replica_identity: str  # default | full | index | nothing
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]


def validate_pipelines(postgres: PostgresSettings, pipelines: Sequence[PipelineSpec]) -> list[SourceTable]:
    """Check every pipeline against its table; raise one :class:`ConfigurationError` listing every problem."""
    try:
        with psycopg.connect(postgres.dsn(), connect_timeout=10, autocommit=True) as connection:
            tables = [_describe(connection, spec) for spec in pipelines]
    except psycopg.OperationalError as error:
        raise ServiceError.postgres_unreachable(postgres, error, "to check the pipelines") from None
    problems = [
        problem for spec, table in zip(pipelines, tables, strict=True) for problem in _problems(spec, table)
    ]
    if problems:
        raise ConfigurationError("invalid pipelines: " + "; ".join(problems))
    return [table for table in tables if table is not None]


def _describe(connection: psycopg.Connection[tuple[object, ...]], spec: PipelineSpec) -> SourceTable | None:
    row = connection.execute(_TABLE_SHAPE_SQL, (spec.schema_name, spec.table_name)).fetchone()
    if row is None or row[0] not in ("r", "p"):
        return None
    _, owner, replica_identity, columns, primary_key = row
    return SourceTable(
        pipeline=spec.name,
        table=spec.source_table,
        owner=str(owner),
        replica_identity=_REPLICA_IDENTITY.get(str(replica_identity), str(replica_identity)),
        columns=tuple(str(column) for column in cast(list[object], columns)),
        primary_key=tuple(str(column) for column in cast(list[object], primary_key)),
    )


def _problems(spec: PipelineSpec, table: SourceTable | None) -> list[str]:
    """Each problem names the pipeline, the table, and what to change."""
    where = f"pipeline {spec.name!r}"
    if table is None:
        return [
            f"{where}: source table {spec.source_table} does not exist (or is not a table); create it or fix source_table"
        ]
    problems = []
    if not table.primary_key:
        problems.append(
            f"{where}: {table.table} has no primary key; add a single-column primary key (the document id)"
        )
    elif len(table.primary_key) > 1:
        problems.append(
            f"{where}: {table.table} has a composite primary key ({', '.join(table.primary_key)}); "
            "Tidewire needs a single-column key as the document id"
        )
    elif table.primary_key[0] != spec.primary_key:
        problems.append(
            f"{where}: primary_key is {spec.primary_key!r} but the primary key of {table.table} is "
            f'{table.primary_key[0]!r}; set primary_key = "{table.primary_key[0]}"'
        )
    known = ", ".join(table.columns)
    used = [("text_template", column) for column in spec.template_columns]
    used += [("metadata_columns", column) for column in spec.metadata_columns]
    if spec.tenant_column is not None:
        used.append(("tenant_column", spec.tenant_column))
    for field, column in used:
        if column not in table.columns:
            problems.append(
                f"{where}: {field} names column {column!r}, which {table.table} does not have (columns: {known})"
            )
    return problems

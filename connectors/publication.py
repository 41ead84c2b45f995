"""Keeping the publication ``tidewire`` equal to the captured tables, as their owner.

``ALTER PUBLICATION ... SET TABLE`` needs the publication's and each table's owner: the
application role (migrations create both). The replication role Debezium uses gets SELECT on each
source table for snapshots, and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from connectors.debezium_config import PUBLICATION
from tidewire.errors import ConfigurationError, ServiceError
from tidewire.pipeline_validation import SourceTable
from tidewire.settings import PostgresSettings


def published_tables(connection: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    rows = connection.execute(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s", (PUBLICATION,)
    ).fetchall()
    return {str(row[0]) for row in rows}


def sync_publication(
    postgres: PostgresSettings, sources: Sequence[SourceTable], tables: Sequence[str]
) -> bool:
    """Make the publication hold exactly ``tables``; grant the replication role SELECT on the sources.

    Returns whether the publication changed. Runs in one transaction.
    """
    not_owned = [source for source in sources if source.owner != postgres.user]
    if not_owned:
        first = not_owned[0]
        raise ConfigurationError(
            f"pipeline {first.pipeline!r}: {first.table} is owned by {first.owner!r}, not {postgres.user!r}; "
            f"only the owner may add it to the publication: ALTER TABLE {first.table} OWNER TO {postgres.user}"
        )
    nothing = [source for source in sources if source.replica_identity == "nothing"]
    if nothing:
        raise ConfigurationError(
            f"pipeline {nothing[0].pipeline!r}: {nothing[0].table} has REPLICA IDENTITY NOTHING, so its "
            f"updates and deletes cannot be captured; ALTER TABLE {nothing[0].table} REPLICA IDENTITY DEFAULT"
        )
    try:
        with psycopg.connect(postgres.dsn(), connect_timeout=10) as connection, connection.transaction():
            for source in sources:
                connection.execute(
                    sql.SQL("GRANT SELECT ON {} TO {}").format(
                        _qualified(source.table), sql.Identifier(postgres.replication_user)
                    )
                )
            if published_tables(connection) == set(tables):
                return False
            connection.execute(
                sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(
                    sql.Identifier(PUBLICATION), sql.SQL(", ").join(_qualified(table) for table in tables)
                )
            )
            return True
    except psycopg.OperationalError as error:
        raise ServiceError.postgres_unreachable(postgres, error, "to update the publication") from None


def _qualified(table: str) -> sql.Composable:
    schema, name = table.split(".")
    return sql.Identifier(schema, name)

"""Deleting stored chat answers past their retention (``tidewire answers prune``).

Every completed answer is kept in ``tidewire_answers`` with its sources, and the semantic cache
looks questions up there through an HNSW index. Without a bound the table and that index grow with
every question ever asked, and so does the work of each lookup and each invalidation. Answers are
reused only while younger than ``api.semantic_cache_max_age_s``; this deletes them for good once they
are older than ``api.answer_retention_days``.

It runs as the application role, across tenants: the API's own role sees one tenant per transaction.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from tidewire.errors import ServiceError, StorageError
from tidewire.settings import PostgresSettings

# A batch per transaction, so no lock is held for long while chats go on. No ORDER BY: every row
# past the cutoff goes in the end, and the scan can stop at the batch's last row instead of sorting them all.
_DELETE_BATCH_SQL = """
DELETE FROM tidewire_answers
WHERE answer_id IN (SELECT answer_id FROM tidewire_answers WHERE created_at < %(cutoff)s LIMIT %(batch)s)
"""


def prune_answers(postgres: PostgresSettings, older_than: timedelta, *, batch_size: int = 5_000) -> int:
    """Delete every tenant's answers created more than ``older_than`` ago (by the database's clock);
    return how many were deleted."""
    if older_than <= timedelta(0) or batch_size < 1:
        raise ValueError("older_than and batch_size must be positive")
    deleted = 0
    try:
        with psycopg.connect(postgres.dsn(), connect_timeout=10, autocommit=True) as connection:
            cutoff_row = connection.execute("SELECT now() - %s::interval", (older_than,)).fetchone()
            assert cutoff_row is not None
            parameters = {"cutoff": cutoff_row[0], "batch": batch_size}
            while True:
                batch = connection.execute(_DELETE_BATCH_SQL, parameters).rowcount
                deleted += batch
                if batch < batch_size:
                    return deleted
    except psycopg.errors.UndefinedTable:
        raise StorageError(
            "the database has no tidewire_answers table yet; run `tidewire db upgrade` first"
        ) from None
    except psycopg.OperationalError as error:
        raise ServiceError.postgres_unreachable(
            postgres, error, f"to prune answers ({deleted} deleted so far)"
        ) from None

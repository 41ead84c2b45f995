"""The API's Postgres pool, whose every transaction is confined to one tenant by row-level security.

The pool connects as the API's own role (``postgres.api_user``, migration 0005): not a superuser,
no BYPASSRLS, owner of nothing, so the tables' row-level security binds it because of who it is,
not because of a session setting a client could reset. :meth:`TenantDatabase.transaction` sets
``tidewire.tenant_id`` with ``set_config(..., true)`` — the same as ``SET LOCAL`` — so it ends with
the transaction and a pooled connection never carries one tenant into another's request. A
transaction that does not set a tenant sees no tenant rows at all.

The pooled connections are in autocommit, so that :meth:`TenantDatabase.statement` can run one
statement as its own transaction: a function that sets the tenant itself, the same way, such as
``tidewire_vector_search`` (migration 0015), costs one round trip instead of four.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.errors import ServiceUnavailableError
from tidewire.settings import PostgresSettings

TenantConnection = psycopg.AsyncConnection[dict[str, Any]]


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    await register_vector_async(connection)
    await connection.commit()


@contextmanager
def unavailable_database_as_503() -> Iterator[None]:
    """Turn Postgres not answering (a broken connection, the pool's wait running out) into a 503
    with ``Retry-After``: the request may well succeed later, so no 500."""
    try:
        yield
    except (psycopg.OperationalError, TimeoutError) as error:
        raise ServiceUnavailableError(f"the database is unavailable: {type(error).__name__}") from error


def make_pool(settings: PostgresSettings, *, max_size: int) -> AsyncConnectionPool:
    """A pool of the API role's connections (not opened yet: ``await pool.open()``)."""
    return AsyncConnectionPool(
        settings.api_dsn(),
        min_size=1,
        max_size=max_size,
        name="tidewire-api",
        open=False,
        configure=_configure,
        # Autocommit: a statement outside `transaction()` is its own transaction (see the module docstring).
        kwargs={"row_factory": dict_row, "application_name": "tidewire-api", "autocommit": True},
        timeout=10,
    )


class TenantDatabase:
    """Hands out transactions confined to one tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def transaction(
        self, tenant_id: str, settings: dict[str, str] | None = None
    ) -> AsyncIterator[TenantConnection]:
        """A connection in a transaction whose tenant is ``tenant_id``; ``settings`` are further
        transaction-local settings (``hnsw.ef_search``...). Commits on success."""
        names = ["tidewire.tenant_id", *(settings or {})]
        values = [tenant_id, *(settings or {}).values()]
        select = ", ".join(f"set_config(%s, %s, true) AS s{index}" for index in range(len(names)))
        parameters = [item for pair in zip(names, values, strict=True) for item in pair]
        with unavailable_database_as_503():
            async with self.pool.connection() as connection, connection.transaction():
                await connection.execute(f"SELECT {select}", parameters)
                yield connection  # type: ignore[misc]

    async def statement(self, query: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows of one statement run as its own transaction, with no tenant set: only for a call
        of a function that sets the tenant itself with ``set_config(..., true)`` (which then ends with
        the statement), such as ``tidewire_vector_search``. Anything else sees no tenant rows."""
        with unavailable_database_as_503():
            async with self.pool.connection() as connection:
                cursor = connection.cursor(row_factory=dict_row)
                return await (await cursor.execute(query, parameters)).fetchall()

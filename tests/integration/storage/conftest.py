"""Fixtures of the storage tests: a scratch database for migrations, an async pool on the real Postgres,
a unique pipeline per test."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import pytest

from tests.integration.conftest import forget_pipeline_rows
from tidewire.runtime.stack import LocalStack
from tidewire.settings import PostgresSettings, Settings
from tidewire.vector_store import VectorStore

T = TypeVar("T")
StoreRunner = Callable[[Callable[[VectorStore, psycopg_pool.AsyncConnectionPool], Awaitable[T]]], T]


@pytest.fixture
def scratch_database(local_stack: LocalStack, settings: Settings) -> Iterator[PostgresSettings]:
    """A new, empty database owned by the application role (with pgvector), dropped afterwards."""
    name = f"tidewire_migration_{uuid.uuid4().hex[:10]}"
    superuser = local_stack.postgres.superuser_conninfo()
    with psycopg.connect(superuser, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE {name} OWNER "{settings.postgres.user}"')
    with psycopg.connect(local_stack.postgres.superuser_conninfo(name), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION vector")
    yield settings.postgres.model_copy(update={"database": name})
    with psycopg.connect(superuser, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def pipeline_name(local_stack: LocalStack, settings: Settings) -> Iterator[str]:
    """A pipeline name no other test uses; its rows are removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    forget_pipeline_rows(settings, name)


def tenant_partition(tenant: str) -> str:
    """The name of a tenant's own partition of the chunks table (migration 0007)."""
    return f"tidewire_chunks_t_{hashlib.md5(tenant.encode()).hexdigest()}"


def open_pool(dsn: str) -> psycopg_pool.AsyncConnectionPool:
    return psycopg_pool.AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False)


@pytest.fixture
def run_with_store(local_stack: LocalStack, settings: Settings) -> StoreRunner[Any]:
    """Run an async test body with a VectorStore over a fresh pool (inside its own event loop)."""

    def run(body: Callable[[VectorStore, psycopg_pool.AsyncConnectionPool], Awaitable[T]]) -> T:
        async def main() -> T:
            async with open_pool(settings.postgres.dsn()) as pool:
                return await body(VectorStore(pool), pool)

        return asyncio.run(main())

    return run

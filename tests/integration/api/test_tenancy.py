"""Tenant isolation: over HTTP (nothing a request says can widen its tenant) and in the database
(row-level security on the API's own role and connections)."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest
from httpx_sse import connect_sse
from pgvector.psycopg import register_vector

from api.db import TenantDatabase, make_pool
from api.search import _VECTOR_SEARCH_CALL
from tests.integration.api.conftest import CORPUS, Tenant
from tidewire.settings import Settings


def owned_by(tenant: Tenant, document_id: str) -> bool:
    return document_id.startswith(tenant.name + "-")


def test_search_never_returns_another_tenants_chunks(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, beta = corpus_tenants
    for tenant, other in ((alpha, beta), (beta, alpha)):
        for mode in ("vector", "hybrid"):
            params = {
                "q": "Selah the Lord is my shepherd",
                "k": 100,
                "mode": mode,
                "tenant": other.name,
                "tenant_id": other.name,
            }
            headers = {**tenant.headers, "X-Tenant": other.name, "X-Tenant-ID": other.name}
            hits = httpx.get(f"{api_url}/v1/search", params=params, headers=headers).json()["hits"]
            assert hits and all(owned_by(tenant, hit["document_id"]) for hit in hits)
            assert len({hit["document_id"] for hit in hits}) >= len(CORPUS) - (
                0 if mode == "vector" else len(CORPUS)
            )


def test_a_filter_naming_another_tenant_changes_nothing(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, beta = corpus_tenants
    params = {"q": "light", "filter": f'{{"tenant": "{beta.name}"}}'}
    assert httpx.get(f"{api_url}/v1/search", params=params, headers=alpha.headers).json()["hits"] == []


def test_document_status_of_another_tenants_document_is_404(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, beta = corpus_tenants
    response = httpx.get(f"{api_url}/v1/documents/{beta.doc('creation')}", headers=alpha.headers)
    assert response.status_code == 404
    assert (
        httpx.get(f"{api_url}/v1/documents/{beta.doc('creation')}", headers=beta.headers).status_code == 200
    )


def test_chat_sources_come_only_from_the_callers_tenant(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, beta = corpus_tenants
    body = {"question": "Selah, who is my shepherd?", "k": 20, "tenant": beta.name, "tenant_id": beta.name}
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", f"{api_url}/v1/chat", json=body, headers=alpha.headers) as source,
    ):
        events = list(source.iter_sse())
    sources = events[0].json()["sources"]
    assert events[0].event == "sources" and sources
    assert all(owned_by(alpha, item["document_id"]) for item in sources)


def test_row_level_security_confines_the_api_connections(
    api_settings: Settings, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, beta = corpus_tenants

    async def check() -> None:
        pool = make_pool(api_settings.postgres, max_size=1)  # one connection: every transaction reuses it
        await pool.open()
        database = TenantDatabase(pool)
        try:
            tenants_query = "SELECT DISTINCT tenant_id FROM tidewire_chunks"  # no WHERE: only RLS filters
            async with database.transaction(alpha.name) as connection:
                seen = {
                    row["tenant_id"] for row in await (await connection.execute(tenants_query)).fetchall()
                }
                assert seen == {alpha.name}
                states = await (
                    await connection.execute("SELECT DISTINCT tenant_id FROM tidewire_document_state")
                ).fetchall()
                assert {row["tenant_id"] for row in states} == {alpha.name}
            # The next transaction on the same pooled connection, without a tenant, sees nothing.
            async with pool.connection() as connection:
                assert await (await connection.execute(tenants_query)).fetchall() == []
                row = await (
                    await connection.execute("SELECT current_setting('tidewire.tenant_id', true) AS t")
                ).fetchone()
                assert row is not None and not row["t"]
            # Writing another tenant's row from a tenant transaction is refused: the index is not
            # writable at all, and answers (which the API writes) only in the transaction's tenant.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                async with database.transaction(alpha.name) as connection:
                    await connection.execute(
                        "UPDATE tidewire_chunks SET chunk_text = chunk_text WHERE tenant_id = %s",
                        (beta.name,),
                    )
            async with database.transaction(alpha.name) as connection:
                updated = await connection.execute(
                    "UPDATE tidewire_answers SET invalidated_at = now() WHERE tenant_id = %s", (beta.name,)
                )
                assert updated.rowcount == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                async with database.transaction(alpha.name) as connection:
                    await connection.execute(
                        "INSERT INTO tidewire_answers (answer_id, tenant_id, question, question_embedding, "
                        "answer, sources, source_documents, provider) "
                        "SELECT gen_random_uuid(), %s, 'q', array_fill(0, ARRAY[384])::vector, 'a', '[]', "
                        "'{}', 'test'",
                        (beta.name,),
                    )
        finally:
            await pool.close()

    asyncio.run(check())


def test_the_one_statement_vector_search_keeps_to_its_tenant_and_leaves_nothing_behind(
    api_settings: Settings, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    """``tidewire_vector_search`` (migration 0015) as the API calls it: one autocommit statement on a
    pooled connection. It returns only its tenant's chunks, and the tenant and index settings it set end
    with the statement, so the connection's next user sees no tenant rows."""
    alpha, beta = corpus_tenants
    with psycopg.connect(api_settings.postgres.dsn()) as owner:
        register_vector(owner)
        row = owner.execute(
            "SELECT embedding FROM tidewire_chunks WHERE tenant_id = %s LIMIT 1", (beta.name,)
        ).fetchone()
    assert row is not None
    beta_vector = row[0]  # the nearest chunks are beta's: alpha must still get only its own

    async def check() -> None:
        pool = make_pool(api_settings.postgres, max_size=1)  # one connection: every statement reuses it
        await pool.open()
        database = TenantDatabase(pool)
        try:
            for tenant in (alpha, beta):
                rows = await database.statement(
                    _VECTOR_SEARCH_CALL,
                    {
                        "tenant": tenant.name,
                        "embedding": beta_vector,
                        "filter": None,
                        "limit": 100,
                        "ef_search": 110,
                        "iterative_scan": "relaxed_order",
                        "max_scan_tuples": 20_000,
                    },
                )
                assert rows and all(owned_by(tenant, row["document_id"]) for row in rows)
                async with pool.connection() as connection:
                    after = await (
                        await connection.execute(
                            "SELECT current_setting('tidewire.tenant_id', true) AS tenant, "
                            "current_setting('hnsw.ef_search') AS ef_search, "
                            "(SELECT count(*) FROM tidewire_chunks) AS visible"
                        )
                    ).fetchone()
                    assert after == {"tenant": "", "ef_search": "40", "visible": 0}
        finally:
            await pool.close()

    asyncio.run(check())


def test_the_api_role_is_confined_by_row_level_security_because_of_who_it_is(
    api_settings: Settings, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, _ = corpus_tenants
    postgres = api_settings.postgres
    with psycopg.connect(postgres.api_dsn(), autocommit=True) as connection:
        attributes = connection.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert attributes == (False, False)
        # No tenant set: nothing, whatever the session says about the old scope marker.
        connection.execute("SELECT set_config('tidewire.scope', 'none', false)")
        for table in ("tidewire_chunks", "tidewire_document_state", "tidewire_answers"):
            assert connection.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        # Tenant A set (transaction-local): only A's rows.
        with connection.transaction():
            connection.execute("SELECT set_config('tidewire.tenant_id', %s, true)", (alpha.name,))
            for table in ("tidewire_chunks", "tidewire_document_state"):
                tenants = connection.execute(f"SELECT DISTINCT tenant_id FROM {table}").fetchall()
                assert tenants == [(alpha.name,)], table
        assert connection.execute("SELECT count(*) FROM tidewire_chunks").fetchone() == (0,)
        # Turning row security off does not widen what the role sees: its queries fail instead.
        connection.execute("SET row_security = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            connection.execute("SELECT count(*) FROM tidewire_chunks")
        connection.execute("RESET row_security")
        # It cannot become the owner, nor write the source table or the index.
        for statement in (
            "SET ROLE " + postgres.user,
            "INSERT INTO documents (id, tenant_id, body) VALUES ('api-role-probe', 'x', 'x')",
            "UPDATE documents SET body = body WHERE id = 'api-role-probe'",
            "DELETE FROM documents WHERE id = 'api-role-probe'",
            "SELECT count(*) FROM documents",
            "DELETE FROM tidewire_chunks",
            "UPDATE tidewire_document_state SET deleted = true",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)

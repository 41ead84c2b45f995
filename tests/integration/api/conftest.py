"""The read API on the real stack: a uvicorn server in a thread, keys in the real key table,
documents written as an upstream writer would (rows in ``public.documents``), indexed by the
stack's own stream worker, and read back through HTTP.

Every session uses fresh tenant names, so data other tests (or a developer) left in the shared
database never matches, and nothing here deletes anyone else's rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from api.app import create_app
from api.auth import KeyStore
from api.server import uvicorn_protocol_options
from models.embedder import Embedder
from tests.integration.conftest import fresh_test_prefix
from tests.unit.api.support import serve_in_thread, wait_for
from tidewire import database
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings

INDEX_TIMEOUT_S = 240

CORPUS = {
    "creation": ("Genesis 1", "In the beginning God created the heaven and the earth."),
    "shepherd": (
        "Psalm 23",
        "The Lord is my shepherd; I shall not want. He maketh me to lie down in green pastures.",
    ),
    "commandments": (
        "Exodus 20",
        "Thou shalt not kill. Thou shalt not commit adultery. Thou shalt not steal.",
    ),
    "love": ("1 Corinthians 13", "Charity suffereth long, and is kind; charity envieth not."),
    "light": ("Genesis 1:3", "And God said, Let there be light: and there was light."),
}


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def doc(self, slug: str) -> str:
        return f"{self.name}-{slug}"


@pytest.fixture(scope="session")
def api_settings(settings: Settings, local_stack: LocalStack) -> Settings:
    """The stack's settings, migrated, with limits suited to tests (no key cache: revocation is instant)."""
    database.upgrade(settings.postgres)
    api = settings.api.model_copy(
        update={
            "rate_limit_per_s": 1_000.0,
            "rate_limit_burst": 1_000,
            "key_cache_ttl_s": 0.0,
            "sse_ping_s": 1.0,
        }
    )
    return settings.model_copy(update={"api": api})


@pytest.fixture(scope="session")
def embedder(api_settings: Settings) -> Embedder:
    return Embedder.from_settings(api_settings.embedding)


ApiFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="session")
def api_factory(api_settings: Settings, embedder: Embedder) -> ApiFactory:
    """Start an API server with some ``api`` settings changed; yields its URL."""

    @contextmanager
    def start(**api_overrides: Any) -> Iterator[str]:
        api = api_settings.api.model_validate({**api_settings.api.model_dump(), **api_overrides})
        app = create_app(api_settings.model_copy(update={"api": api}), embedder=embedder)
        with serve_in_thread(app, **uvicorn_protocol_options(api)) as url:
            yield url

    return start


@pytest.fixture(scope="session")
def api_url(api_factory: ApiFactory) -> Iterator[str]:
    with api_factory() as url:
        yield url


@pytest.fixture(scope="session")
def key_store(api_settings: Settings) -> KeyStore:
    return KeyStore(api_settings.postgres, pepper=None)


@pytest.fixture(scope="session")
def tenant_factory(key_store: KeyStore) -> Callable[[str], Tenant]:
    prefix = fresh_test_prefix()

    def make(label: str) -> Tenant:
        name = f"{prefix}{label}"
        return Tenant(name=name, key=key_store.create(name).key)

    return make


class Documents:
    """Writes rows into ``public.documents`` as an upstream system would, and waits for the index."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.postgres.dsn()

    def query(self, sql: str, parameters: Any = None) -> list[dict[str, Any]]:
        with psycopg.connect(self._dsn, row_factory=dict_row, autocommit=True) as connection:
            cursor = connection.execute(sql, parameters)
            return cursor.fetchall() if cursor.description else []

    def upsert(
        self, tenant: str, document_id: str, title: str, body: str, metadata: dict[str, Any] | None = None
    ) -> datetime:
        """Insert or update a row; returns its ``updated_at`` (the read-your-writes token's time)."""
        rows = self.query(
            "INSERT INTO public.documents (id, tenant_id, title, body, metadata) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body, "
            "metadata = excluded.metadata, updated_at = now() RETURNING updated_at",
            (document_id, tenant, title, body, json.dumps(metadata or {})),
        )
        updated_at: datetime = rows[0]["updated_at"]
        return updated_at

    @contextmanager
    def writer_transaction(self) -> Iterator[tuple[psycopg.Connection[Any], str]]:
        """A writer's transaction that took its read-your-writes LSN first, as docs/api.md tells
        writers to: yields the connection and ``pg_current_wal_insert_lsn()`` (``X/Y``); commits on exit."""
        with psycopg.connect(self._dsn) as connection:
            row = connection.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            assert row is not None
            yield connection, row[0]

    def indexed_since(self, document_id: str, since: datetime) -> bool:
        rows = self.query(
            "SELECT 1 FROM tidewire_document_state WHERE document_id = %s "
            "AND source_committed_at >= date_trunc('milliseconds', %s::timestamptz)",
            (document_id, since),
        )
        return bool(rows)

    def wait_indexed(self, document_id: str, since: datetime) -> None:
        wait_for(
            lambda: self.indexed_since(document_id, since),
            timeout_s=INDEX_TIMEOUT_S,
            what=f"{document_id} to be indexed by the stream worker",
        )


@pytest.fixture(scope="session")
def documents(api_settings: Settings) -> Documents:
    return Documents(api_settings)


@pytest.fixture(scope="session")
def corpus_tenants(tenant_factory: Callable[[str], Tenant], documents: Documents) -> tuple[Tenant, Tenant]:
    """Two tenants holding the same verses (tenant b's with a marker word), indexed."""
    alpha, beta = tenant_factory("a"), tenant_factory("b")
    written = []
    for tenant, marker in ((alpha, ""), (beta, " Selah.")):
        for slug, (title, body) in CORPUS.items():
            lang = "en" if slug != "love" else "en-GB"
            metadata = {"lang": lang, "book": title.split()[0], "tenant": tenant.name}
            written.append(
                (
                    tenant.doc(slug),
                    documents.upsert(tenant.name, tenant.doc(slug), title, body + marker, metadata),
                )
            )
    for document_id, updated_at in written:
        documents.wait_indexed(document_id, updated_at)
    return alpha, beta

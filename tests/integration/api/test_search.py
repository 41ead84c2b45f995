"""``GET /v1/search`` on the real stack."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from api.app import create_app
from models.embedder import Embedder
from tests.integration.api.conftest import CORPUS, ApiFactory, Documents, Tenant
from tests.unit.api.support import serve_in_thread
from tidewire.settings import Settings


def search(url: str, tenant: Tenant, **params: object) -> httpx.Response:
    return httpx.get(f"{url}/v1/search", params=params, headers=tenant.headers, timeout=30)


def test_finds_the_indexed_verse_best_first_with_cosine_scores(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, _ = corpus_tenants
    response = search(api_url, alpha, q="Who created the heaven and the earth?", k=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"query", "model", "took_ms", "hits"} and body["model"].endswith("all-MiniLM-L6-v2")
    hits = body["hits"]
    assert hits[0]["document_id"] == alpha.doc("creation")
    assert hits[0]["text"].endswith("created the heaven and the earth.")
    assert hits[0]["metadata"]["lang"] == "en"
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= score <= 1 for score in scores)
    assert len(hits) == 5  # k rows even though most of the table belongs to other tenants


def test_hybrid_mode_fuses_text_and_vector_rankings(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, _ = corpus_tenants
    hits = search(api_url, alpha, q="shepherd green pastures", k=3, mode="hybrid").json()["hits"]
    assert hits[0]["document_id"] == alpha.doc("shepherd")
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)


def test_hybrid_mode_with_a_metadata_filter_keeps_to_it(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, _ = corpus_tenants
    hits = search(
        api_url, alpha, q="light", k=10, mode="hybrid", filter=json.dumps({"book": "Genesis"})
    ).json()["hits"]
    assert {hit["document_id"] for hit in hits} == {alpha.doc("creation"), alpha.doc("light")}
    # Both rankings put the verse that says "light" twice first.
    assert hits[0]["document_id"] == alpha.doc("light")


def test_metadata_filters(api_url: str, corpus_tenants: tuple[Tenant, Tenant]) -> None:
    alpha, _ = corpus_tenants
    hits = search(api_url, alpha, q="kindness", k=10, filter=json.dumps({"lang": "en-GB"})).json()["hits"]
    assert [hit["document_id"] for hit in hits] == [alpha.doc("love")]
    hits = search(api_url, alpha, q="light", k=10, filter=json.dumps({"book": "Genesis"})).json()["hits"]
    assert {hit["document_id"] for hit in hits} == {alpha.doc("creation"), alpha.doc("light")}


@pytest.mark.parametrize(
    "hostile",
    [
        {"lang": "en' OR '1'='1"},
        {"lang": 'en"; DROP TABLE tidewire_chunks; --'},
        {"$.lang": "en"},
        {"lang": {"$ne": "x"}},
        {"lang": "ünïcödé ✝ 𝔘"},
        {"') OR true; --": 1},
        {"tenant_id": "default"},
    ],
)
def test_hostile_filters_are_plain_data(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant], hostile: dict[str, object]
) -> None:
    alpha, _ = corpus_tenants
    response = search(api_url, alpha, q="light", k=10, filter=json.dumps(hostile))
    assert response.status_code == 200, response.text
    assert response.json()["hits"] == []


def test_read_your_writes_waits_for_the_write_to_be_indexed(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant], documents: Documents
) -> None:
    alpha, _ = corpus_tenants
    document_id = alpha.doc("fresh")
    updated_at = documents.upsert(
        alpha.name, document_id, "Fresh", "A brand new verse about quokkas and wombats."
    )
    response = search(
        api_url, alpha, q="quokkas and wombats", k=1, after=f"{document_id}@{updated_at.isoformat()}"
    )
    assert response.status_code == 200, response.text
    assert response.headers["tidewire-read-after"] == "satisfied"
    assert response.json()["hits"][0]["document_id"] == document_id


@pytest.fixture(scope="module")
def writer_tenant(tenant_factory: Callable[[str], Tenant]) -> Tenant:
    """A tenant of its own for the read-your-writes tests, so their documents rank in no other test."""
    return tenant_factory("writer")


def _search_while_the_write_commits(
    url: str, tenant: Tenant, documents: Documents, statement: str, parameters: tuple[Any, ...], **params: Any
) -> httpx.Response:
    """Send a search whose ``after`` token is the writer's LSN while the write is still uncommitted,
    then commit: only a search that waits for the token can see the write."""
    with documents.writer_transaction() as (connection, lsn), ThreadPoolExecutor(1) as pool:
        connection.execute(statement, parameters)
        document_id = parameters[-1]
        pending = pool.submit(search, url, tenant, after=f"{document_id}@lsn:{lsn}", **params)
        time.sleep(0.3)  # let the request reach the server before the commit (not needed to pass)
        connection.commit()
        return pending.result()


def test_read_your_writes_with_an_lsn_token_returns_the_new_text(
    api_factory: ApiFactory, writer_tenant: Tenant, documents: Documents
) -> None:
    document_id = writer_tenant.doc("lsn-update")
    written = documents.upsert(
        writer_tenant.name, document_id, "Before", "An old verse about badgers in the hills."
    )
    documents.wait_indexed(document_id, written)
    with api_factory(read_your_writes_max_wait_s=30) as url:
        response = _search_while_the_write_commits(
            url,
            writer_tenant,
            documents,
            "UPDATE documents SET body = %s, updated_at = now() WHERE id = %s",
            ("A new verse about platypuses and echidnas by the river.", document_id),
            q="platypuses and echidnas",
            k=1,
        )
    assert response.status_code == 200, response.text
    assert response.headers["tidewire-read-after"] == "satisfied"
    hit = response.json()["hits"][0]
    assert hit["document_id"] == document_id and "platypuses and echidnas" in hit["text"]


def test_an_lsn_token_is_satisfied_by_a_delete(
    api_factory: ApiFactory, writer_tenant: Tenant, documents: Documents
) -> None:
    document_id = writer_tenant.doc("lsn-delete")
    written = documents.upsert(
        writer_tenant.name, document_id, "Doomed", "A verse about axolotls, soon deleted."
    )
    documents.wait_indexed(document_id, written)
    with api_factory(read_your_writes_max_wait_s=30) as url:
        response = _search_while_the_write_commits(
            url,
            writer_tenant,
            documents,
            "DELETE FROM documents WHERE id = %s",
            (document_id,),
            q="axolotls",
            k=10,
        )
    assert response.status_code == 200, response.text
    assert response.headers["tidewire-read-after"] == "satisfied"
    assert document_id not in {hit["document_id"] for hit in response.json()["hits"]}


def test_an_lsn_token_past_the_last_write_times_out(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, _ = corpus_tenants
    response = search(api_url, alpha, q="x", after=f"{alpha.doc('creation')}@lsn:FFFFFFFF/0")
    assert response.status_code == 200
    assert response.headers["tidewire-read-after"] == "timeout"


def test_read_your_writes_wait_is_bounded(api_url: str, corpus_tenants: tuple[Tenant, Tenant]) -> None:
    alpha, _ = corpus_tenants
    response = search(api_url, alpha, q="x", after=f"{alpha.doc('never-written')}@2030-01-01T00:00:00Z")
    assert response.status_code == 200
    assert response.headers["tidewire-read-after"] == "timeout"


@pytest.mark.parametrize(
    "params",
    [
        {"q": "x", "k": 0},
        {"q": "x", "k": 10**9},
        {"q": "x", "k": 101},
        {"q": ""},
        {"q": "x" * 2001},
        {"q": "a\x00b"},
        {"q": "x", "after": "doc@lsn:zz/1"},
        {"q": "x", "after": "doc@lsn:0/"},
        {"q": "x", "after": "no-position"},
        # Python's json reads these; jsonb stores none of them, so they must not reach Postgres.
        {"q": "x", "filter": '{"lang": NaN}'},
        {"q": "x", "filter": '{"lang": -Infinity}'},
        {"q": "x", "filter": '{"lang": 1e400}'},
        {"q": "x", "filter": '{"lang": ' + "[" * 900 + "]" * 900 + "}"},
        {"q": "x", "filter": '{"lang": "\\ud800"}'},
    ],
)
def test_bounds_give_422_on_the_real_server(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant], params: dict[str, object]
) -> None:
    response = search(api_url, corpus_tenants[0], **params)
    assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"


def test_document_status(api_url: str, corpus_tenants: tuple[Tenant, Tenant]) -> None:
    alpha, _ = corpus_tenants
    response = httpx.get(f"{api_url}/v1/documents/{alpha.doc('creation')}", headers=alpha.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["document_id"] == alpha.doc("creation") and body["chunks"] == 1 and body["indexed_at"]
    missing = httpx.get(f"{api_url}/v1/documents/no-such-doc", headers=alpha.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    for bad in ("a%00b", "%ff%fe", "x" * 600):
        response = httpx.get(f"{api_url}/v1/documents/{bad}", headers=alpha.headers)
        assert response.status_code in (404, 422), (bad, response.text)


def test_document_status_of_an_id_with_slashes(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant], documents: Documents
) -> None:
    alpha, _ = corpus_tenants
    document_id = alpha.doc("reports/2026/q3")
    updated_at = documents.upsert(
        alpha.name, document_id, "Q3", "Quarterly figures about lighthouse keepers."
    )
    indexed = search(
        api_url, alpha, q="lighthouse keepers", k=1, after=f"{document_id}@{updated_at.isoformat()}"
    )
    assert indexed.headers["tidewire-read-after"] == "satisfied", indexed.text
    response = httpx.get(f"{api_url}/v1/documents/{quote(document_id, safe='')}", headers=alpha.headers)
    assert response.status_code == 200, response.text
    assert response.json()["document_id"] == document_id


def test_readyz_and_metrics(
    api_url: str, corpus_tenants: tuple[Tenant, Tenant], tenant_factory: Callable[[str], Tenant]
) -> None:
    ready = httpx.get(f"{api_url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "kafka": "ok"}}
    # A query of its own, so the counters below do not depend on which tests ran first.
    assert search(api_url, corpus_tenants[0], q=f"metrics probe {time.monotonic_ns()}").status_code == 200
    metrics = httpx.get(f"{api_url}/metrics").text
    assert 'tidewire_api_requests_total{route="/v1/search"' in metrics
    assert 'tidewire_api_query_embedding_cache_total{result="miss"}' in metrics


def test_readyz_is_503_naming_kafka_when_the_api_cannot_reach_it(
    api_settings: Settings, embedder: Embedder
) -> None:
    nobody_listens = api_settings.kafka.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})
    app = create_app(api_settings.model_copy(update={"kafka": nobody_listens}), embedder=embedder)
    with serve_in_thread(app) as url:
        ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 503, ready.text
    body = ready.json()
    assert body["status"] == "unavailable" and body["checks"]["postgres"] == "ok"
    assert body["checks"]["kafka"].startswith("down")
    assert body["error"]["code"] == "not_ready" and body["error"]["message"].startswith(
        "not ready: kafka down"
    )


def test_a_small_tenant_gets_k_rows_even_when_the_index_scan_gives_up(
    api_factory: ApiFactory, corpus_tenants: tuple[Tenant, Tenant]
) -> None:
    alpha, _ = corpus_tenants
    # An index scan allowed to look at almost nothing finds few of this tenant's rows among everyone
    # else's; the exact fallback must still answer with all k, in order.
    with api_factory(hnsw_ef_search=1, hnsw_max_scan_tuples=1) as url:
        hits = search(url, alpha, q="Who created the heaven and the earth?", k=5).json()["hits"]
    assert len(hits) == 5 and {hit["document_id"] for hit in hits} <= {alpha.doc(slug) for slug in CORPUS} | {
        alpha.doc("fresh")
    }
    assert hits[0]["document_id"] == alpha.doc("creation")
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)

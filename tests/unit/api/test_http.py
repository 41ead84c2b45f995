"""The HTTP surface without a database: error shapes, bounds, auth, rate limits, SSE framing.

The app is the real one; only the services behind the routes are stand-ins (the real ones, on the
real stack, are exercised in tests/integration/api).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx_sse import connect_sse

from api.app import create_app
from api.auth import Principal, bearer_token
from api.chat.service import ChatEvent
from api.deps import Services
from api.errors import UnauthorizedError
from api.event_ids import EventIdCodec
from api.events_stream import NotificationHub
from api.metrics import ApiMetrics
from api.rate_limit import RateLimiter
from api.schemas import SearchHitPublic
from api.search import Retrieval
from tidewire.events.codec import make_event_codec
from tidewire.settings import Settings

GOOD = "Bearer good-key"


class Keys:
    async def verify(self, authorization: str | None) -> Principal:
        principal = self.cached_principal(authorization)
        if principal is None:
            raise UnauthorizedError()
        return principal

    def cached_principal(self, authorization: str | None) -> Principal | None:
        return Principal(key_id="k1", tenant_id="acme") if bearer_token(authorization) == "good-key" else None


class Embedder:
    model_id = "test-model"

    async def embed(self, text: str, *, tenant_id: str) -> np.ndarray:
        return np.zeros(384, dtype=np.float32)


class Database:
    @asynccontextmanager
    async def transaction(self, tenant_id: str) -> AsyncIterator[None]:
        yield None


class Search:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def retrieve(self, tenant_id: str, **kwargs: Any) -> Retrieval:
        self.calls.append({"tenant_id": tenant_id, **kwargs})
        if kwargs.get("text") == "a bug":
            raise RuntimeError("a bug in the search")
        hit = SearchHitPublic(document_id="d", chunk_index=0, score=0.9, text="t", metadata={})
        return Retrieval(hits=[hit], source_lsns={"d": 1})


class Chat:
    async def answer(self, tenant_id: str, question: str, k: int | None) -> AsyncIterator[ChatEvent]:
        yield ChatEvent("sources", {"sources": []})
        for piece in ("a ", "b"):
            yield ChatEvent("token", {"text": piece})
        yield ChatEvent("done", {"answer_id": "x", "cached": False, "usage": {}})


def install_services(app: Any, settings: Settings, search: Search, **extra: Any) -> None:
    """The app's services with the stand-ins above (``extra``: further ``Services`` fields)."""
    metrics = app.state.metrics
    app.state.services = Services(
        settings=settings.api,
        database=Database(),  # type: ignore[arg-type]
        keys=Keys(),  # type: ignore[arg-type]
        limiter=RateLimiter(rate_per_s=settings.api.rate_limit_per_s, burst=settings.api.rate_limit_burst),
        embedder=Embedder(),  # type: ignore[arg-type]
        search=search,  # type: ignore[arg-type]
        chat=Chat(),  # type: ignore[arg-type]
        hub=NotificationHub(
            bootstrap_servers="127.0.0.1:1",
            topic="t",
            codec=make_event_codec(settings.kafka),
            event_ids=EventIdCodec(b"test secret"),
            buffer_size=100,
            client_queue=10,
        ),
        metrics=metrics if isinstance(metrics, ApiMetrics) else ApiMetrics.create(),
        **extra,
    )


@pytest.fixture
def client() -> Iterator[tuple[TestClient, Search]]:
    settings = Settings(api={"rate_limit_per_s": 1, "rate_limit_burst": 30, "max_body_bytes": 4096})
    app = create_app(settings)
    search = Search()
    install_services(app, settings, search)
    # No `with`: the lifespan (which would connect to Postgres and Kafka) does not run.
    yield TestClient(app, raise_server_exceptions=False), search


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", "Basic Z29vZC1rZXk=", "good-key", "Bearer " + "x" * 1_000_000],
)
def test_bad_or_missing_keys_get_401(client: tuple[TestClient, Search], authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client[0].get("/v1/search", params={"q": "x"}, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "params",
    [
        {"q": "x", "k": "0"},
        {"q": "x", "k": str(10**9)},
        {"q": "x", "k": "ten"},
        {"q": ""},
        {"q": "x" * 2001},
        {},
        {"q": "a\x00b"},
        {"q": "x", "mode": "magic"},
        {"q": "x", "filter": "not json"},
        {"q": "x", "filter": "[1]"},
        {"q": "x", "filter": '{"a": {"b": {"c": {"d": {"e": 1}}}}}'},
        {"q": "x", "after": "no-at-sign"},
        {"q": "x", "after": "doc@yesterday"},
    ],
)
def test_out_of_bounds_search_parameters_get_422(
    client: tuple[TestClient, Search], params: dict[str, str]
) -> None:
    assert_error(
        client[0].get("/v1/search", params=params, headers={"Authorization": GOOD}), 422, "validation_error"
    )


def test_search_answers_the_documented_shape_for_the_keys_tenant(client: tuple[TestClient, Search]) -> None:
    test_client, search = client
    response = test_client.get(
        "/v1/search",
        params={"q": "hello", "k": "5", "tenant": "other", "filter": '{"lang": "en\'; DROP TABLE x; --"}'},
        headers={"Authorization": GOOD, "X-Tenant": "other"},
    )
    assert response.status_code == 200
    assert set(response.json()) == {"query", "model", "took_ms", "hits"}
    assert response.headers["x-request-id"]
    assert search.calls[-1]["tenant_id"] == "acme"
    assert search.calls[-1]["metadata_filter"] == {"lang": "en'; DROP TABLE x; --"}


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{", 422, "validation_error"),
        (b'{"question": ""}', 422, "validation_error"),
        (b'{"question": "' + b"x" * 2001 + b'"}', 422, "validation_error"),
        (b"[]", 422, "validation_error"),
        (b'{"question": "a", "k": 0}', 422, "validation_error"),
        (b'{"question": "a", "k": 1000000000}', 422, "validation_error"),
        (b'{"question": "\xff\xfe"}', 422, "validation_error"),  # not UTF-8
        (b'\xef\xbb\xbf{"question": "\xc3"}', 422, "validation_error"),  # a truncated UTF-8 sequence
    ],
)
def test_bad_chat_bodies_get_a_clean_4xx(
    client: tuple[TestClient, Search], content: bytes, status: int, code: str
) -> None:
    response = client[0].post(
        "/v1/chat", content=content, headers={"Authorization": GOOD, "Content-Type": "application/json"}
    )
    assert_error(response, status, code)


@pytest.mark.parametrize("after", ["doc@lsn:zz/1", "doc@lsn:0/", "doc@not-a-time", "no-position"])
def test_garbage_read_your_writes_tokens_get_422(client: tuple[TestClient, Search], after: str) -> None:
    response = client[0].get(
        "/v1/search", params={"q": "hello", "after": after}, headers={"Authorization": GOOD}
    )
    assert_error(response, 422, "validation_error")
    assert response.json()["error"]["message"].startswith("query.after:")


def test_invalid_utf8_in_a_chat_body_is_a_422_in_the_error_shape(client: tuple[TestClient, Search]) -> None:
    response = client[0].post(
        "/v1/chat",
        content=b'{"question": "caf\xe9"}',  # Latin-1, not UTF-8
        headers={"Authorization": GOOD, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": {"code": "validation_error", "message": "body: not valid UTF-8 at byte 17"}
    }


def test_nul_in_a_question_gets_422(client: tuple[TestClient, Search]) -> None:
    response = client[0].post("/v1/chat", json={"question": "a\x00b"}, headers={"Authorization": GOOD})
    assert_error(response, 422, "validation_error")


def test_huge_bodies_get_413(client: tuple[TestClient, Search]) -> None:
    response = client[0].post("/v1/chat", json={"question": "x" * 10_000}, headers={"Authorization": GOOD})
    assert_error(response, 413, "payload_too_large")
    assert response.headers["x-request-id"]


def test_an_unexpected_error_is_a_500_in_the_error_shape_with_the_request_id_logged(
    client: tuple[TestClient, Search], caplog: pytest.LogCaptureFixture
) -> None:
    response = client[0].get(
        "/v1/search", params={"q": "a bug"}, headers={"Authorization": GOOD, "X-Request-ID": "trace-me-42"}
    )
    assert_error(response, 500, "internal_error")
    assert response.headers["x-request-id"] == "trace-me-42"
    assert "Traceback" not in response.text
    [logged] = [record for record in caplog.records if record.name == "tidewire.api.errors"]
    assert "trace-me-42" in logged.getMessage() and logged.exc_info is not None


def test_over_the_rate_limit_gets_429_with_retry_after(client: tuple[TestClient, Search]) -> None:
    statuses = [
        client[0].get("/v1/search", params={"q": "x"}, headers={"Authorization": GOOD}) for _ in range(31)
    ]
    assert [response.status_code for response in statuses[:30]] == [200] * 30
    assert_error(statuses[30], 429, "rate_limited")
    assert int(statuses[30].headers["retry-after"]) >= 1


def test_unknown_routes_and_methods_use_the_error_shape(client: tuple[TestClient, Search]) -> None:
    assert_error(client[0].get("/v1/nothing"), 404, "not_found")
    assert_error(client[0].delete("/v1/search"), 405, "method_not_allowed")


def test_garbage_last_event_id_gets_422(client: tuple[TestClient, Search]) -> None:
    for garbage in ("garbage", "0:1;1:x", "9" * 3000):
        response = client[0].get("/v1/events", headers={"Authorization": GOOD, "Last-Event-ID": garbage})
        assert_error(response, 422, "validation_error")


def test_chat_streams_sources_tokens_done_with_ids(client: tuple[TestClient, Search]) -> None:
    with connect_sse(
        client[0], "POST", "/v1/chat", json={"question": "hi"}, headers={"Authorization": GOOD}
    ) as source:
        events = list(source.iter_sse())
    assert [event.event for event in events] == ["sources", "token", "token", "done"]
    assert all(event.id for event in events) and len({event.id for event in events}) == 4
    assert "".join(event.json()["text"] for event in events if event.event == "token") == "a b"


def test_health_metrics_and_openapi(client: tuple[TestClient, Search]) -> None:
    test_client = client[0]
    assert test_client.get("/healthz").json() == {"status": "ok", "checks": {}}
    assert "tidewire_api_requests" in test_client.get("/metrics").text
    assert "/v1/search" in test_client.get("/openapi.json").json()["paths"]
    assert test_client.get("/docs").status_code == 200


def test_invalid_utf8_and_nul_in_urls_are_clean_4xx(client: tuple[TestClient, Search]) -> None:
    test_client = client[0]
    for url in ("/v1/search?q=%ff%fe", "/v1/search?q=%c3", "/v1/search?q=x&filter=%ff"):
        response = test_client.get(url, headers={"Authorization": GOOD})
        assert response.status_code in (200, 422), (url, response.text)
    assert_error(
        test_client.get("/v1/documents/a%00b", headers={"Authorization": GOOD}), 422, "validation_error"
    )


def test_a_chunked_body_over_the_limit_gets_413(client: tuple[TestClient, Search]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(10):
            yield b"x" * 1_000
        yield b'"}'

    response = client[0].post(
        "/v1/chat", content=chunks(), headers={"Authorization": GOOD, "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")

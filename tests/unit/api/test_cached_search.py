"""Cached searches answered before FastAPI's routing: the same answers, the same refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import routers
from api.app import create_app
from api.cached_search import MEMO_MAX_QUERY_BYTES, ParsedSearches
from api.search_cache import SearchResultCache
from tests.unit.api.test_http import GOOD, Search, assert_error, install_services
from tests.unit.api.test_search_cache import CHANGED, make_cache
from tidewire.settings import Settings

HEADERS = {"Authorization": GOOD}
QUERY = {"q": "light", "k": "3"}


@pytest.fixture
def shortcut_client(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[TestClient, Search, SearchResultCache, list[int]]]:
    """A client whose search route counts the requests that reach it (a shortcut answer does not)."""
    settings = Settings(api={"rate_limit_per_s": 0.001, "rate_limit_burst": 6})
    reached_route: list[int] = []
    route_authenticates: Callable[..., Any] = routers.search.get_principal

    async def counted(request: Any) -> Any:
        reached_route.append(1)
        return await route_authenticates(request)

    monkeypatch.setattr(routers.search, "get_principal", counted)
    app = create_app(settings)
    search = Search()
    cache = make_cache()
    install_services(app, settings, search, search_cache=cache)
    yield TestClient(app, raise_server_exceptions=False), search, cache, reached_route


def test_a_cached_search_is_answered_without_the_route_and_identically(
    shortcut_client: tuple[TestClient, Search, SearchResultCache, list[int]],
) -> None:
    client, search, _, reached_route = shortcut_client
    first = client.get("/v1/search", params=QUERY, headers=HEADERS)
    second = client.get("/v1/search", params=QUERY, headers=HEADERS)
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(reached_route) == 1 and len(search.calls) == 1
    assert {**first.json(), "took_ms": 0} == {**second.json(), "took_ms": 0}
    assert second.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    metrics = client.get("/metrics").text
    assert 'tidewire_api_requests_total{route="/v1/search",status="200"} 2.0' in metrics
    assert 'tidewire_api_search_cache_total{result="hit"} 1.0' in metrics


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        (QUERY, {}, 401, "unauthorized"),
        (QUERY, {"Authorization": "Bearer wrong"}, 401, "unauthorized"),
        ({**QUERY, "k": "0"}, HEADERS, 422, "validation_error"),
        ({**QUERY, "filter": "[1]"}, HEADERS, 422, "validation_error"),
        ({**QUERY, "after": "garbage"}, HEADERS, 422, "validation_error"),
    ],
)
def test_what_the_route_refuses_still_reaches_the_route(
    shortcut_client: tuple[TestClient, Search, SearchResultCache, list[int]],
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    client, _, _, reached_route = shortcut_client
    assert client.get("/v1/search", params=QUERY, headers=HEADERS).status_code == 200
    assert_error(client.get("/v1/search", params=params, headers=headers), status, code)
    assert len(reached_route) == 2


def test_a_cached_search_spends_the_rate_limit_and_gets_429_beyond_it(
    shortcut_client: tuple[TestClient, Search, SearchResultCache, list[int]],
) -> None:
    client, search, _, reached_route = shortcut_client
    statuses = [client.get("/v1/search", params=QUERY, headers=HEADERS).status_code for _ in range(8)]
    assert statuses == [200] * 6 + [429] * 2
    assert len(search.calls) == 1
    # The first (a miss) and the two refused ones reached the route; five came from the shortcut.
    assert len(reached_route) == 3
    refused = client.get("/v1/search", params=QUERY, headers=HEADERS)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1


def test_nothing_is_answered_from_an_invalidated_cache(
    shortcut_client: tuple[TestClient, Search, SearchResultCache, list[int]],
) -> None:
    client, search, cache, _ = shortcut_client
    client.get("/v1/search", params=QUERY, headers=HEADERS)
    asyncio.run(cache.invalidate("acme", CHANGED))  # what the notifications hub calls
    assert client.get("/v1/search", params=QUERY, headers=HEADERS).status_code == 200
    assert len(search.calls) == 2


def test_parsed_searches_remember_valid_query_strings_within_their_bounds() -> None:
    parsed = ParsedSearches(max_entries=2)
    first = parsed.parse(b"q=light&k=3")
    assert first is not None and (first.query.q, first.query.k, first.q_json) == ("light", 3, b'"light"')
    assert parsed.parse(b"q=light&k=3") is first  # remembered: not parsed again
    parsed.parse(b"q=dark")
    parsed.parse(b"q=water")  # the least recently used entry goes
    assert parsed.parse(b"q=light&k=3") is not first
    long_query = b"q=light&padding=" + b"a" * MEMO_MAX_QUERY_BYTES  # unknown parameters are ignored
    long_parsed = parsed.parse(long_query)
    assert long_parsed is not None and long_parsed.query.q == "light"
    assert parsed.parse(long_query) is not long_parsed  # parsed, never remembered


@pytest.mark.parametrize(
    "query_string",
    [
        b"q=light&k=0",
        b"q=",
        b"q=%00",
        b"q=light&filter=%7Bbad",
        b"q=light&after=doc-1%401970-01-01T00%3A00%3A00Z",
    ],
)
def test_parsed_searches_refuse_what_the_route_must_answer(query_string: bytes) -> None:
    parsed = ParsedSearches(max_entries=8)
    assert parsed.parse(query_string) is None
    assert parsed.parse(query_string) is None

"""The search response cache: what it keeps, when it forgets, and how ``GET /v1/search`` uses it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.search_cache import SearchResultCache, search_key
from tests.unit.api.test_http import GOOD, Search, install_services
from tidewire.settings import Settings

pytestmark = pytest.mark.anyio
CHANGED = {"doc-1": datetime(2026, 1, 1, tzinfo=UTC)}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_cache(
    epoch: list[int | None] | None = None, clock: Clock | None = None, **bounds: Any
) -> SearchResultCache:
    state = epoch if epoch is not None else [1]
    return SearchResultCache(
        max_entries=bounds.get("max_entries", 10),
        max_bytes=bounds.get("max_bytes", 1_000),
        ttl_s=bounds.get("ttl_s", 30.0),
        epoch=lambda: state[0],
        clock=clock or Clock(),
    )


def key(tenant: str = "acme", q: str = "light") -> tuple[str, str, int, str, str | None]:
    return search_key(tenant, q, 10, "vector", None)


def test_filters_differing_only_in_key_order_share_a_key() -> None:
    assert search_key("t", "q", 5, "vector", {"a": 1, "b": 2}) == search_key(
        "t", "q", 5, "vector", {"b": 2, "a": 1}
    )
    assert search_key("t", "q", 5, "vector", None) != search_key("t", "q", 5, "hybrid", None)


async def test_a_notification_drops_only_its_tenants_entries() -> None:
    cache = make_cache()
    for tenant in ("acme", "globex"):
        cache.put(key(tenant), b"[]", cache.stamp(tenant))
    await cache.invalidate("acme", CHANGED)
    assert cache.get(key("acme")) is None
    assert cache.get(key("globex")) == b"[]"


async def test_a_search_that_raced_with_a_notification_is_not_kept() -> None:
    cache = make_cache()
    stamp = cache.stamp("acme")  # the search starts, reads the index...
    await cache.invalidate("acme", CHANGED)  # ...a change of the tenant is notified...
    cache.put(key(), b"[]", stamp)  # ...and its (possibly stale) answer arrives
    assert cache.get(key()) is None


def test_nothing_is_kept_or_served_while_the_notifications_consumer_is_down() -> None:
    epoch: list[int | None] = [1]
    cache = make_cache(epoch)
    cache.put(key(), b"[]", cache.stamp("acme"))
    epoch[0] = None
    assert cache.stamp("acme") is None and cache.get(key()) is None
    cache.put(key("acme", "other"), b"[]", cache.stamp("acme"))
    assert len(cache) == 0


def test_entries_from_before_a_reconnect_are_not_served() -> None:
    epoch: list[int | None] = [1]
    cache = make_cache(epoch)
    cache.put(key(), b"[]", cache.stamp("acme"))
    epoch[0] = 2
    assert cache.get(key()) is None


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = make_cache(clock=clock, ttl_s=30.0)
    cache.put(key(), b"[]", cache.stamp("acme"))
    clock.now += 29.9
    assert cache.get(key()) == b"[]"
    clock.now += 0.2
    assert cache.get(key()) is None


def test_bounded_by_entries_and_bytes_least_recently_used_first() -> None:
    cache = make_cache(max_entries=2, max_bytes=10)
    cache.put(key(q="a"), b"1234", cache.stamp("acme"))
    cache.put(key(q="b"), b"1234", cache.stamp("acme"))
    assert cache.get(key(q="a")) is not None  # now the most recently used
    cache.put(key(q="c"), b"1234", cache.stamp("acme"))
    assert cache.get(key(q="b")) is None and cache.get(key(q="a")) is not None
    cache.put(key(q="d"), b"123456789", cache.stamp("acme"))  # 9 bytes: only it fits
    assert len(cache) == 1 and cache.size_bytes == 9
    cache.put(key(q="e"), b"x" * 11, cache.stamp("acme"))  # larger than the bound: not kept
    assert cache.get(key(q="e")) is None and len(cache) == 1


def test_a_disabled_cache_keeps_nothing() -> None:
    cache = SearchResultCache.disabled()
    cache.put(key(), b"[]", (0, 0))
    assert not cache.enabled and cache.stamp("acme") is None and len(cache) == 0


class WaitingSearch(Search):
    async def wait_until_indexed(self, tenant_id: str, after: object, *, max_wait_s: float) -> bool:
        return False


@pytest.fixture
def cached_client() -> Iterator[tuple[TestClient, Search, SearchResultCache]]:
    settings = Settings(api={"rate_limit_per_s": 1_000, "rate_limit_burst": 1_000})
    app = create_app(settings)
    search = WaitingSearch()
    cache = make_cache()
    install_services(app, settings, search, search_cache=cache)
    yield TestClient(app, raise_server_exceptions=False), search, cache


def test_a_repeated_search_is_answered_from_the_cache_until_the_tenant_changes(
    cached_client: tuple[TestClient, Search, SearchResultCache],
) -> None:
    client, search, cache = cached_client
    headers = {"Authorization": GOOD}
    answers = [client.get("/v1/search", params={"q": "light", "k": 3}, headers=headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert len(search.calls) == 1
    first, cached = answers[0].json(), answers[2].json()
    assert list(cached) == ["query", "model", "took_ms", "hits"]
    assert cached["hits"] == first["hits"] and cached["query"] == "light" and cached["model"] == "test-model"
    # Another k, mode or filter is another search.
    client.get("/v1/search", params={"q": "light", "k": 4}, headers=headers)
    client.get("/v1/search", params={"q": "light", "k": 3, "filter": '{"a":1}'}, headers=headers)
    assert len(search.calls) == 3
    asyncio.run(cache.invalidate("acme", CHANGED))  # what the notifications hub calls
    client.get("/v1/search", params={"q": "light", "k": 3}, headers=headers)
    assert len(search.calls) == 4
    metrics = client.get("/metrics").text
    assert 'tidewire_api_search_cache_total{result="hit"} 2.0' in metrics


def test_a_read_your_writes_search_bypasses_the_cache(
    cached_client: tuple[TestClient, Search, SearchResultCache],
) -> None:
    client, search, cache = cached_client
    headers = {"Authorization": GOOD}
    client.get("/v1/search", params={"q": "light"}, headers=headers)
    assert len(cache) == 1
    search.calls.clear()
    answer = client.get("/v1/search", params={"q": "light", "after": "doc-1@lsn:0/1"}, headers=headers)
    assert answer.status_code == 200 and answer.headers["tidewire-read-after"] == "timeout"
    assert len(search.calls) == 1

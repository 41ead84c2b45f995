"""Key verification: one lookup and one constant-time digest comparison whatever is wrong with a
well-formed key, so response time does not tell an unknown key id from a wrong secret."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

import psycopg_pool
import pytest

from api.auth import KeyVerifier, Principal, generate_key, hash_key
from api.errors import ServiceUnavailableError, UnauthorizedError

pytestmark = pytest.mark.anyio
KEY_ID, KEY = generate_key()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingVerifier(KeyVerifier):
    """The real verifier with the table lookup answered from a dict (no database in unit tests)."""

    def __init__(self, rows: dict[str, dict[str, Any]], ttl_s: float = 0.0) -> None:
        super().__init__(None, pepper=None, ttl_s=ttl_s, clock=lambda: self.now)  # type: ignore[arg-type]
        self.rows = rows
        self.lookups = 0
        self.now = 1_000.0

    async def _lookup(self, key_id: str) -> dict[str, Any] | None:
        self.lookups += 1
        return self.rows.get(key_id)


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    original = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return original(a, b)

    monkeypatch.setattr("api.auth.hmac.compare_digest", counting)
    return calls


def row(revoked: bool = False) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "key_hash": hash_key(KEY),
        "revoked_at": datetime.now(UTC) if revoked else None,
    }


async def test_a_valid_key_gives_its_tenant() -> None:
    assert await CountingVerifier({KEY_ID: row()}).verify(f"Bearer {KEY}") == Principal(KEY_ID, "acme")


@pytest.mark.parametrize(
    ("rows", "token"),
    [
        ({}, KEY),  # unknown key id
        ({KEY_ID: row()}, KEY[:-1] + ("A" if KEY[-1] != "A" else "B")),  # wrong secret
        ({KEY_ID: row(revoked=True)}, KEY),  # revoked
    ],
)
async def test_every_bad_key_costs_one_lookup_and_one_full_comparison(
    comparisons: list[tuple[int, int]], rows: dict[str, dict[str, Any]], token: str
) -> None:
    verifier = CountingVerifier(rows)
    with pytest.raises(UnauthorizedError):
        await verifier.verify(f"Bearer {token}")
    assert verifier.lookups == 1
    assert comparisons == [(32, 32)]


async def test_malformed_keys_cost_no_lookup(comparisons: list[tuple[int, int]]) -> None:
    verifier = CountingVerifier({KEY_ID: row()})
    for header in (None, "Bearer x", "Bearer " + "tw_" * 400_000):
        with pytest.raises(UnauthorizedError):
            await verifier.verify(header)
    assert verifier.lookups == 0 and comparisons == []


async def test_verified_keys_are_cached_for_the_ttl_only_when_valid() -> None:
    verifier = CountingVerifier({KEY_ID: row()}, ttl_s=60)
    for _ in range(3):
        await verifier.verify(f"Bearer {KEY}")
    assert verifier.lookups == 1
    verifier.rows.clear()
    assert (await verifier.verify(f"Bearer {KEY}")).tenant_id == "acme"  # within the TTL


async def test_a_revoked_key_is_refused_once_its_cache_entry_expires() -> None:
    verifier = CountingVerifier({KEY_ID: row()}, ttl_s=5)
    await verifier.verify(f"Bearer {KEY}")
    verifier.rows[KEY_ID] = row(revoked=True)
    verifier.now += 4.9
    assert (await verifier.verify(f"Bearer {KEY}")).tenant_id == "acme"  # cached: within api.key_cache_ttl_s
    verifier.now += 0.2
    with pytest.raises(UnauthorizedError):
        await verifier.verify(f"Bearer {KEY}")
    assert verifier.lookups == 2


class UnreachablePool:
    """A pool whose every connection attempt fails the way psycopg_pool's does when Postgres is away."""

    def connection(self) -> Any:
        raise psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec")


async def test_a_database_that_does_not_answer_is_a_503_to_retry_not_a_500() -> None:
    verifier = KeyVerifier(UnreachablePool(), pepper=None, ttl_s=0)  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailableError) as caught:
        await verifier.verify(f"Bearer {KEY}")
    assert caught.value.status_code == 503 and caught.value.headers == {"Retry-After": "1"}

"""API keys: generation, hashing, verification, and the administrative key store.

A key looks like ``tw_<key id>_<secret>``: ``key id`` is 12 hex characters, public, and is the
row's lookup prefix; ``secret`` is 32 random bytes (URL-safe base64). Only an HMAC-SHA256 of the
whole key is stored (keyed with ``api.key_pepper`` when set), so a database dump yields no usable
key. A key has 256 bits of entropy, which is why a fast hash is enough (no password stretching).

Verification costs the same for an unknown key id as for a known one with a wrong secret (a
dummy digest is compared), and digests are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.db import unavailable_database_as_503
from api.errors import UnauthorizedError
from tidewire.errors import ConfigurationError, ServiceError
from tidewire.events.models import NAME_PATTERN
from tidewire.settings import PostgresSettings

KEY_PREFIX = "tw_"
KEY_ID_HEX_CHARS = 12
SECRET_BYTES = 32
# tw_ + 12 + _ + 43 (base64 of 32 bytes, unpadded)
KEY_LENGTH = len(KEY_PREFIX) + KEY_ID_HEX_CHARS + 1 + 43
KEY_PATTERN = re.compile(rf"{KEY_PREFIX}([0-9a-f]{{{KEY_ID_HEX_CHARS}}})_([A-Za-z0-9_-]{{43}})")
DEFAULT_PEPPER = b"tidewire-api-key-v1"
_DUMMY_DIGEST = hashlib.sha256(b"no such key").digest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key (by its public id) and the one tenant it may read."""

    key_id: str
    tenant_id: str


@dataclass(frozen=True)
class NewKey:
    """A freshly created key; ``key`` is shown once and never stored."""

    key_id: str
    tenant_id: str
    key: str


def generate_key() -> tuple[str, str]:
    """A new ``(key_id, key)`` pair from the operating system's CSPRNG."""
    key_id = secrets.token_hex(KEY_ID_HEX_CHARS // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else None. Cheap on any input (length checked first)."""
    if len(key) != KEY_LENGTH:
        return None
    match = KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def hash_key(key: str, pepper: bytes | None = None) -> bytes:
    """The stored form of a key: HMAC-SHA256 keyed with the pepper."""
    return hmac.new(pepper or DEFAULT_PEPPER, key.encode(), hashlib.sha256).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


class KeyVerifier:
    """Checks API keys against ``tidewire_api_keys``, caching good keys for ``ttl_s`` (LRU-bounded).

    Revocation takes effect within ``ttl_s``. Unknown and bad keys are never cached, so each one
    costs a lookup; the per-key rate limiter runs only after a key is verified, and a malformed
    key is rejected before any lookup.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        pepper: bytes | None,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._pepper = pepper
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    async def verify(self, authorization: str | None) -> Principal:
        """The principal of a valid, unrevoked key; :class:`UnauthorizedError` for anything else."""
        token = bearer_token(authorization)
        key_id = parse_key(token) if token is not None else None
        if token is None or key_id is None:
            raise UnauthorizedError()
        digest = hash_key(token, self._pepper)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        now = self._clock()
        row = await self._lookup(key_id)
        stored = row["key_hash"] if row is not None else _DUMMY_DIGEST
        matches = hmac.compare_digest(bytes(stored), digest)
        if row is None or not matches or row["revoked_at"] is not None:
            self._cache.pop(digest, None)
            raise UnauthorizedError()
        principal = Principal(key_id=key_id, tenant_id=row["tenant_id"])
        if self._ttl_s > 0:
            self._cache[digest] = (principal, now + self._ttl_s)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return principal

    def cached_principal(self, authorization: str | None) -> Principal | None:
        """The principal of a key verified within ``ttl_s``, without a lookup; None for anything
        else (which :meth:`verify` then decides)."""
        token = bearer_token(authorization)
        if token is None or parse_key(token) is None:
            return None
        return self._cached(hash_key(token, self._pepper))

    def _cached(self, digest: bytes) -> Principal | None:
        cached = self._cache.get(digest)
        if cached is None or cached[1] <= self._clock():
            return None
        self._cache.move_to_end(digest)
        return cached[0]

    async def _lookup(self, key_id: str) -> dict[str, Any] | None:
        # The key may well be valid: Postgres away is a 503 to retry, like every other database call.
        with unavailable_database_as_503():
            async with (
                self._pool.connection() as connection,
                connection.cursor(row_factory=dict_row) as cursor,
            ):
                await cursor.execute(
                    "SELECT tenant_id, key_hash, revoked_at FROM tidewire_api_keys WHERE key_id = %s",
                    (key_id,),
                )
                return await cursor.fetchone()


class KeyStore:
    """Creates, lists and revokes keys (the ``tidewire keys`` commands); synchronous, short-lived."""

    def __init__(self, postgres: PostgresSettings, *, pepper: bytes | None) -> None:
        self._postgres = postgres
        self._pepper = pepper

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        try:
            return psycopg.connect(self._postgres.dsn(), row_factory=dict_row, connect_timeout=5)
        except psycopg.OperationalError as error:
            raise ServiceError.postgres_unreachable(self._postgres, error, "to manage API keys") from None

    def create(self, tenant_id: str, *, name: str | None = None) -> NewKey:
        """A new key for ``tenant_id``; the returned ``key`` is the only copy there will ever be."""
        if not NAME_PATTERN.fullmatch(tenant_id):
            raise ConfigurationError(
                f"invalid tenant {tenant_id!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
            )
        key_id, key = generate_key()
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO tidewire_api_keys (key_id, tenant_id, key_hash, name) VALUES (%s, %s, %s, %s)",
                (key_id, tenant_id, hash_key(key, self._pepper), name),
            )
        return NewKey(key_id=key_id, tenant_id=tenant_id, key=key)

    def list(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Every key (never its secret), newest first; only one tenant's when given."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT key_id, tenant_id, name, created_at, revoked_at FROM tidewire_api_keys "
                "WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s ORDER BY created_at DESC",
                {"tenant": tenant_id},
            ).fetchall()
        return [{**row, "revoked": row["revoked_at"] is not None} for row in rows]

    def revoke(self, key_id: str) -> datetime:
        """Revoke a key by its id (or the whole key); returns when. Raises if there is no such key."""
        key_id = parse_key(key_id) or key_id
        with self._connect() as connection:
            row = connection.execute(
                "UPDATE tidewire_api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %s "
                "RETURNING revoked_at",
                (key_id,),
            ).fetchone()
        if row is None:
            raise ConfigurationError(f"no API key with id {key_id!r}; `tidewire keys list` shows them")
        revoked_at: datetime = row["revoked_at"]
        return revoked_at

"""The search response cache: a repeated identical search of a tenant answered from memory.

"Identical" means the same tenant, ``q``, ``k``, ``mode`` and metadata filter; a search with
``after=`` never uses it (a read-your-writes request asks for the index as of a write). What is
kept is the serialized ``hits`` of the answer, so a hit costs no embedding, no database round trip
and no serialization of the hits.

Freshness: the process's notifications consumer (:class:`api.events_stream.NotificationHub`, the
one that feeds ``/v1/events``) calls :meth:`SearchResultCache.invalidate` for every batch of
``document.indexed`` / ``document.deleted`` notifications, which drops every cached search of that
tenant. A cached answer is therefore at most as old as the notification's delivery to the API
(typically well under a second after the change is searchable). Three guards keep it from living
longer:

- entries are stamped with the tenant's *generation*, taken before the search ran: a search that
  raced with an invalidation is not stored, and one stored before is never served after;
- entries are stamped with the consumer's connection epoch: nothing is stored or served while the
  consumer is disconnected (notifications could be missed), and entries from before a reconnect
  are discarded;
- every entry expires after ``ttl_s`` whatever happens (changes that bypass the pipeline, such as
  SQL run directly on the vector table, produce no notification).

Bounds: at most ``max_entries`` answers and ``max_bytes`` of serialized hits in the whole process,
least recently used evicted first.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# (tenant_id, q, k, mode, canonical filter JSON or None)
SearchKey = tuple[str, str, int, str, str | None]
# (consumer connection epoch, tenant generation)
Stamp = tuple[int, int]


def search_key(
    tenant_id: str, q: str, k: int, mode: str, metadata_filter: dict[str, Any] | None
) -> SearchKey:
    """The cache key of a search; filters that differ only in key order or spacing share one."""
    canonical = None if metadata_filter is None else json.dumps(metadata_filter, sort_keys=True)
    return (tenant_id, q, k, mode, canonical)


@dataclass(frozen=True)
class CachedSearch:
    """One cached answer: the serialized ``hits`` array, and when and under what stamp it was made."""

    hits_json: bytes
    stamp: Stamp
    expires_at: float


class SearchResultCache:
    """Cached search answers of every tenant in one process, invalidated per tenant."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        ttl_s: float,
        epoch: Callable[[], int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``epoch()`` is the notifications consumer's connection epoch, None while it is not
        connected; the cache is off when ``max_entries``, ``max_bytes`` or ``ttl_s`` is 0."""
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._epoch = epoch
        self._clock = clock
        self._entries: OrderedDict[SearchKey, CachedSearch] = OrderedDict()
        self._by_tenant: dict[str, set[SearchKey]] = {}
        self._generations: dict[str, int] = {}
        self._bytes = 0

    @classmethod
    def disabled(cls) -> SearchResultCache:
        """A cache that keeps nothing."""
        return cls(max_entries=0, max_bytes=0, ttl_s=0, epoch=lambda: None)

    @property
    def enabled(self) -> bool:
        return self._max_entries > 0 and self._max_bytes > 0 and self._ttl_s > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def stamp(self, tenant_id: str) -> Stamp | None:
        """The stamp a search of ``tenant_id`` starting now would be stored under; None when nothing
        may be stored (cache off, or the notifications consumer is not connected)."""
        if not self.enabled:
            return None
        epoch = self._epoch()
        if epoch is None:
            return None
        return (epoch, self._generations.get(tenant_id, 0))

    def get(self, key: SearchKey) -> bytes | None:
        """The serialized hits of a live entry for ``key``, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.stamp != self.stamp(key[0]) or entry.expires_at <= self._clock():
            self._discard(key)
            return None
        self._entries.move_to_end(key)
        return entry.hits_json

    def put(self, key: SearchKey, hits_json: bytes, stamp: Stamp | None) -> None:
        """Keep ``hits_json`` for ``key``, unless the tenant changed since ``stamp`` was taken (the
        search may have read the index before the change) or it alone exceeds the byte bound."""
        if stamp is None or stamp != self.stamp(key[0]) or len(hits_json) > self._max_bytes:
            return
        self._discard(key)
        self._entries[key] = CachedSearch(hits_json, stamp, self._clock() + self._ttl_s)
        self._by_tenant.setdefault(key[0], set()).add(key)
        self._bytes += len(hits_json)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._discard(next(iter(self._entries)))

    async def invalidate(self, tenant_id: str, changes: dict[str, datetime]) -> None:
        """Drop every cached search of ``tenant_id`` (a notifications listener: ``changes`` maps
        the documents indexed or deleted to when; any change may alter any search of the tenant)."""
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1
        for key in list(self._by_tenant.get(tenant_id, ())):
            self._discard(key)

    def _discard(self, key: SearchKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= len(entry.hits_json)
        keys = self._by_tenant.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_tenant[key[0]]

"""Per-key rate limiting: one token bucket per API key, in memory, per API process."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from api.errors import RateLimitedError


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate_per_s``; a request takes one."""

    rate_per_s: float
    capacity: float
    tokens: float
    updated_at: float

    def take(self, now: float) -> float:
        """Take a token; return 0 when granted, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.rate_per_s)
        self.updated_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_s


class RateLimiter:
    """Token buckets by key id; the least recently used are forgotten past ``max_keys`` (a
    forgotten key starts again with a full bucket, which only ever errs on the generous side)."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, key: str) -> None:
        """Spend one request of ``key``; :class:`RateLimitedError` (with ``Retry-After``) when over."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self._rate_per_s, float(self._burst), float(self._burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait_s = bucket.take(now)
        if wait_s > 0:
            raise RateLimitedError(wait_s)

"""The per-key token bucket."""

from __future__ import annotations

import pytest

from api.errors import RateLimitedError
from api.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("key")
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("key")
    assert refused.value.headers["Retry-After"] == "1"
    assert refused.value.retry_after_s == pytest.approx(0.5)
    clock.now += 0.5
    limiter.check("key")
    with pytest.raises(RateLimitedError):
        limiter.check("key")


def test_keys_have_separate_buckets() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=Clock())
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(RateLimitedError):
        limiter.check("a")


def test_retry_after_is_a_whole_number_of_seconds_at_least_one() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=0.1, burst=1, clock=clock)
    limiter.check("slow")
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("slow")
    assert refused.value.headers["Retry-After"] == "10"


def test_forgotten_keys_are_bounded() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, max_keys=10, clock=Clock())
    for index in range(100):
        limiter.check(f"key-{index}")
    assert len(limiter._buckets) == 10

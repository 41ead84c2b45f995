"""The retry policy: exponential, capped, honouring retry_after; poison is never retried."""

from __future__ import annotations

import asyncio

import pytest

from streams.errors import PoisonEventError, RetryableBatchError, WorkerCrashError
from streams.retry import RetryPolicy, retrying
from tidewire.events import FailureStage

FAST = RetryPolicy(attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002)


def test_delays_double_and_are_capped() -> None:
    policy = RetryPolicy(attempts=6, initial_backoff_s=0.5, max_backoff_s=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(1, retry_after_s=5.0) == 5.0


def test_jitter_spreads_each_wait_below_its_backoff_but_never_below_retry_after() -> None:
    policy = RetryPolicy(attempts=6, initial_backoff_s=2.0, max_backoff_s=30.0, jitter=0.5)
    waits = [policy.delay(2) for _ in range(200)]
    assert all(2.0 <= wait <= 4.0 for wait in waits) and len(set(waits)) > 100
    assert all(policy.delay(2, retry_after_s=10.0) == 10.0 for _ in range(20))


def test_a_transient_failure_is_retried_until_it_passes() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableBatchError("database away")
        return "done"

    retries: list[int] = []
    result = asyncio.run(retrying(flaky, FAST, what="x", on_retry=lambda n, _e: retries.append(n)))
    assert (result, len(calls), retries) == ("done", 3, [1, 2])


def test_a_persistent_failure_becomes_a_worker_crash() -> None:
    async def broken() -> None:
        raise RuntimeError("still down")

    with pytest.raises(WorkerCrashError, match=r"failed 3 times.*still down"):
        asyncio.run(retrying(broken, FAST, what="indexing"))


def test_poison_is_not_retried() -> None:
    calls: list[int] = []

    async def poison() -> None:
        calls.append(1)
        raise PoisonEventError("bad", stage=FailureStage.VALIDATE)

    with pytest.raises(PoisonEventError):
        asyncio.run(retrying(poison, FAST, what="x"))
    assert calls == [1]
